"""Run by the tests in a process of its own: the stock tritonclient.grpc client against
Privet's inference service over mTLS. (tritonclient's protos and Privet's KServe v2 protos
share the package `inference`, which one protobuf pool refuses to load twice.)

    python tests/integration/triton_client.py HOME PRINCIPAL ADDRESS MODEL VERSION PURPOSE INPUTS_JSON
prints {"outputs": [[...]], "ready": bool, "metadata": {...}} or {"error": CODE, "details": ...}.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException


def main() -> None:
    home, principal, address, model, version, purpose, inputs_json = sys.argv[1:8]
    pki = pathlib.Path(home) / "pki"
    client = triton.InferenceServerClient(
        url=address, ssl=True, root_certificates=str(pki / "ca.pem"), private_key=str(pki / f"{principal}.key"), certificate_chain=str(pki / f"{principal}.pem")
    )
    columns = json.loads(inputs_json)
    try:
        out: dict = {"live": client.is_server_live(), "ready": client.is_model_ready(model, version)}
        meta = client.get_model_metadata(model, version, as_json=True)
        out["metadata"] = {"inputs": [i["name"] for i in meta["inputs"]], "versions": meta["versions"]}
        tensors = []
        for name, values in columns.items():
            if isinstance(values[0], str):
                t = triton.InferInput(name, [len(values)], "BYTES")
                t.set_data_from_numpy(np.array(values, dtype=object))
            else:
                t = triton.InferInput(name, [len(values)], "FP64")
                t.set_data_from_numpy(np.array(values, dtype=np.float64))
            tensors.append(t)
        result = client.infer(model, tensors, model_version=version, parameters={"purpose": purpose}, outputs=[triton.InferRequestedOutput("probabilities")])
        out["outputs"] = result.as_numpy("probabilities").tolist()
    except InferenceServerException as exc:
        out = {"error": exc.status(), "details": exc.message()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
