"""The worked vectors of docs/audit-format.md §6, so the document cannot drift from the code."""

from __future__ import annotations

import base64
import hashlib

from privet.governance.audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from privet.governance.audit.hashing import leaf_hash
from privet.governance.audit.leaf import EventRecord, decode_leaf, encode_leaf
from privet.governance.audit.merkle import MemoryNodeStore, consistency_proof, inclusion_proof, root

ONE_EVENT = EventRecord(
    seq=0,
    time_us=1750000000000000,
    principal="spiffe://privet.local/user/alice",
    action="ReleaseModelVersion",
    resource="model/fraud/3",
    decision="allow",
    policy_ids=("release-requires-approval",),
    details={"epsilon": "1.5", "note": "caf\u00e9"},
)
ONE_EVENT_LEAF = (
    b'privet.audit.v1\n{"action":"ReleaseModelVersion","decision":"allow",'
    b'"details":{"epsilon":"1.5","note":"caf\\u00e9"},"policy_ids":["release-requires-approval"],'
    b'"principal":"spiffe://privet.local/user/alice","resource":"model/fraud/3","seq":0,"time_us":1750000000000000}'
)

THREE_EVENTS = [
    EventRecord(
        seq=i,
        time_us=1750000000000000 + i,
        principal="spiffe://privet.local/user/alice",
        action="ReleaseModelVersion",
        resource=f"model/fraud/{i}",
        decision="allow",
    )
    for i in range(3)
]
DOC_SIGNER = "PRIVATE+KEY+privet.example/audit+f9da49d1+AV34IoCHhbBVJt8dUXRsXBzg8FQ6KUBmDZAOAUIBct3F"
DOC_VERIFIER = "privet.example/audit+f9da49d1+AROsL6DaSKJ6aJwW81YSqNIO5vqGle42LqC8VGKCyyf1"
DOC_NOTE = (
    "privet.example/audit\n3\n1lcOrre6nLSGiOMu8lYd7j3Yu14LenSfMe1s0SHbb7A=\n\n"
    "\u2014 privet.example/audit "
    "+dpJ0evs2UcMkxeviRGBcu5sPJl/Z4OCd/BqHnDCcmCJ8Wc144pI7FUAWkjUQt2tcc14qDieCbdr20lx1TYJqh1qaww=\n"
)


def test_one_event_leaf_and_hash():
    assert encode_leaf(ONE_EVENT) == ONE_EVENT_LEAF
    assert decode_leaf(ONE_EVENT_LEAF) == ONE_EVENT
    assert leaf_hash(ONE_EVENT_LEAF).hex() == "1f092d1bba1c15484f21b996401038c5a063d03b6c229d1e5777ac9e4951f355"


def test_three_event_log():
    store = MemoryNodeStore()
    for event in THREE_EVENTS:
        store.append(encode_leaf(event))
    hashes = [leaf_hash(encode_leaf(e)).hex() for e in THREE_EVENTS]
    assert hashes == [
        "b258dd2708cd8682a633ce965d5c689816fe89f32c9affad9e8ce12b67db1821",
        "6d81bc85e3685dc472815c3f4858051e6ee313d84dabd5a1989301b4cd8113f2",
        "6d1958af0d6a820b39f5c152170f4b611f154be333ff81720973becfaa03bb0f",
    ]
    r = root(3, store)
    assert r.hex() == "d6570eaeb7ba9cb48688e32ef2561dee3dd8bb5e0b7a749f31ed6cd121db6fb0"
    assert base64.b64encode(r).decode() == "1lcOrre6nLSGiOMu8lYd7j3Yu14LenSfMe1s0SHbb7A="
    assert [p.hex() for p in inclusion_proof(2, 3, store)] == [
        "750155819ec2f1f038f44ff5afcd0be4ec44418b57df2d662863a2ef2fb30db6"
    ]
    assert [p.hex() for p in consistency_proof(1, 3, store)] == hashes[1:]


def test_documented_checkpoint_is_reproduced_and_opens():
    signer = NoteSigner("privet.example/audit", hashlib.sha256(b"privet audit-format.md example key").digest())
    assert signer.text == DOC_SIGNER and signer.verifier.text == DOC_VERIFIER
    root_hash = bytes.fromhex("d6570eaeb7ba9cb48688e32ef2561dee3dd8bb5e0b7a749f31ed6cd121db6fb0")
    cp = Checkpoint("privet.example/audit", 3, root_hash)
    assert sign_checkpoint(cp, signer) == DOC_NOTE
    assert open_checkpoint(DOC_NOTE, NoteVerifier.from_text(DOC_VERIFIER)) == cp
