"""Run by the tests in a process of its own: the stock tritonclient.grpc client against
Privet's inference service over mTLS. (tritonclient's protos and Privet's KServe v2 protos
share the package `inference`, which one protobuf pool refuses to load twice.)

    python tests/integration/triton_client.py HOME PRINCIPAL ADDRESS MODEL VERSION PURPOSE INPUTS_JSON [OUTPUT [PARAMETERS_JSON]]
prints {"outputs": [[...]], "ready": bool, "metadata": {...}} or {"error": CODE, "details": ...}
(OUTPUT: the output to ask for, "probabilities" by default; BYTES outputs come back as text).
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
    output = sys.argv[8] if len(sys.argv) > 8 else "probabilities"
    parameters = {"purpose": purpose, **(json.loads(sys.argv[9]) if len(sys.argv) > 9 else {})}
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
        result = client.infer(model, tensors, model_version=version, parameters=parameters, outputs=[triton.InferRequestedOutput(output)])
        values = result.as_numpy(output)
        out["outputs"] = [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
    except InferenceServerException as exc:
        out = {"error": exc.status(), "details": exc.message()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
