#!/usr/bin/env python3
"""An independent Istio CA client, built with grpcio and the Python code generated from proto/
(Tests/Interop/generated, see scripts/generate-protos). It asks for a workload certificate the way
ztunnel does: a fresh ECDSA P-256 key, a CSR whose only content is a critical URI SAN (the SPIFFE
ID; empty subject, SHA-256 signature), one unary call to
/istio.v1.auth.IstioCertificateService/CreateCertificate over TLS, with the metadata
`authorization: Bearer <token>` and `clusterid: <cluster id>`.

    istio_ca_client.py --address HOST:PORT --ca ROOT.pem --spiffe spiffe://TD/ns/NS/sa/SA
                       [--token TOKEN | --token-file FILE] [--cluster-id ID]
                       [--cert CERT.pem --key KEY.pem] [--server-name NAME]
                       [--ttl SECONDS] [--impersonate] [--key-out FILE] [--header NAME=VALUE ...]
                       [--csr-file FILE]

On success it prints one JSON line per element of the returned cert_chain,
{"index": i, "pem": "<element>"} (the leaf first, the root bundle last), and exits 0. When the call
fails it prints "error: <STATUS NAME> (<code>): <details>" on stderr and exits 1.

With --csr-file the csr field is that file's text as it is (a hand-made CSR, or something that is
not one), and no key is made. Otherwise the key and CSR are made with the `cryptography` package when it is installed, else with the
openssl command.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated"))

import grpc  # noqa: E402

from security.v1alpha1 import ca_pb2, ca_pb2_grpc  # noqa: E402


def key_and_csr(spiffe_id):
    """(PKCS#8 PEM private key, PEM CSR), both str."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return key_and_csr_openssl(spiffe_id)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem.decode("ascii"), csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def key_and_csr_openssl(spiffe_id):
    with tempfile.TemporaryDirectory() as directory:
        key_path, csr_path = os.path.join(directory, "key.pem"), os.path.join(directory, "csr.pem")
        subprocess.run(
            [
                "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-sha256", "-nodes", "-keyout", key_path, "-subj", "/",
                "-addext", f"subjectAltName=critical,URI:{spiffe_id}", "-out", csr_path,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with open(key_path, encoding="ascii") as key, open(csr_path, encoding="ascii") as csr:
            return key.read(), csr.read()


def read(path):
    with open(path, "rb") as file:
        return file.read()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True, help="the CA's HOST:PORT, e.g. 127.0.0.1:15012")
    parser.add_argument("--ca", required=True, help="PEM root certificate(s) to verify the CA's TLS certificate")
    parser.add_argument("--spiffe", required=True, help="SPIFFE ID to put in the CSR's URI SAN")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", help="sent as `authorization: Bearer <token>`")
    token.add_argument("--token-file", help="file holding the token (surrounding whitespace dropped)")
    parser.add_argument("--cluster-id", help="sent as `clusterid: <id>`")
    parser.add_argument("--cert", help="PEM client certificate chain for mutual TLS (with --key)")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--server-name", help="name to verify the CA's certificate against (default: HOST)")
    parser.add_argument("--ttl", type=int, default=86400, help="validity_duration in seconds (default 86400)")
    parser.add_argument(
        "--impersonate",
        action="store_true",
        help='set metadata {"ImpersonatedIdentity": <--spiffe>}, as ztunnel does for the workloads it serves',
    )
    parser.add_argument("--key-out", help="write the generated private key (PKCS#8 PEM) to this file")
    parser.add_argument("--csr-file", help="send this file's text as the csr field instead of a fresh CSR")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME=VALUE", help="extra request metadata (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline of the call in seconds")
    args = parser.parse_args()
    if (args.cert is None) != (args.key is None):
        parser.error("--cert and --key go together")
    for item in args.header:
        if "=" not in item:
            parser.error(f"--header {item!r} is not NAME=VALUE")
    return args


def main():
    args = parse_args()
    if args.csr_file:
        key_pem, csr_pem = None, read(args.csr_file).decode("utf-8", errors="replace")
    else:
        key_pem, csr_pem = key_and_csr(args.spiffe)
    if args.key_out and key_pem:
        with open(args.key_out, "w", encoding="ascii") as file:
            file.write(key_pem)

    request = ca_pb2.IstioCertificateRequest(csr=csr_pem, validity_duration=args.ttl)
    if args.impersonate:
        request.metadata.update({"ImpersonatedIdentity": args.spiffe})

    metadata = []
    token = args.token
    if args.token_file:
        token = read(args.token_file).decode("utf-8").strip()
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    if args.cluster_id is not None:
        metadata.append(("clusterid", args.cluster_id))
    for item in args.header:
        name, value = item.split("=", 1)
        metadata.append((name.lower(), value))

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    with grpc.secure_channel(args.address, credentials, options=options) as channel:
        stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
        try:
            response = stub.CreateCertificate(request, metadata=metadata, timeout=args.timeout)
        except grpc.RpcError as error:
            code = error.code()
            print(f"error: {code.name} ({code.value[0]}): {error.details()}", file=sys.stderr)
            return 1
    for index, pem in enumerate(response.cert_chain):
        print(json.dumps({"index": index, "pem": pem}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
