"""TLS, mutual TLS and bearer tokens, with certificates generated here."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.background import BackgroundServer
from service.api.security import server_credentials
from service.client import main as client_main
from tests.conftest import make_settings
from wsss.v1 import segmentation_pb2 as pb
from wsss.v1 import segmentation_pb2_grpc as pb_grpc

TOKEN = "s3cret-token-for-tests"


def _cert(name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, ca: bool = False,
          server: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    c, k = path.with_suffix(".crt"), path.with_suffix(".key")
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return c, k


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca = _cert("WeakSeg test CA", None, ca=True)
    other_ca = _cert("Someone else's CA", None, ca=True)
    paths = {}
    paths["ca"], _ = _write(d / "ca", *ca)
    paths["server_crt"], paths["server_key"] = _write(d / "server", *_cert("localhost", ca, server=True))
    paths["client_crt"], paths["client_key"] = _write(d / "client", *_cert("client", ca))
    paths["rogue_crt"], paths["rogue_key"] = _write(d / "rogue", *_cert("rogue", other_ca))
    return paths


def _tls_channel(server: BackgroundServer, pki: dict[str, Path], client: str | None = None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki[f"{client}_key"].read_bytes() if client else None,
        certificate_chain=pki[f"{client}_crt"].read_bytes() if client else None,
    )
    return grpc.secure_channel(f"localhost:{server.server.port}", creds)


def _list_models(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> pb.ListModelsResponse:
    return pb_grpc.SegmentationServiceStub(channel).ListModels(pb.ListModelsRequest(), timeout=10, metadata=metadata)


def test_tls(pki: dict[str, Path]) -> None:
    running = BackgroundServer(make_settings(tls_cert=pki["server_crt"], tls_key=pki["server_key"]))
    try:
        with _tls_channel(running, pki) as channel:
            assert len(_list_models(channel).models) == 4
        with grpc.insecure_channel(running.address) as plain:
            with pytest.raises(grpc.RpcError) as info:
                _list_models(plain)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_mutual_tls(pki: dict[str, Path]) -> None:
    running = BackgroundServer(make_settings(tls_cert=pki["server_crt"], tls_key=pki["server_key"], tls_client_ca=pki["ca"]))
    try:
        with _tls_channel(running, pki, "client") as channel:
            assert len(_list_models(channel).models) == 4
        for client in (None, "rogue"):
            with _tls_channel(running, pki, client) as channel:
                with pytest.raises(grpc.RpcError) as info:
                    _list_models(channel)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_bearer_tokens(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    running = BackgroundServer(make_settings(auth_tokens=f"other-token,{TOKEN}"))
    try:
        with running.channel() as channel:
            for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.RpcError) as info:
                    _list_models(channel, metadata)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "missing or invalid bearer token" in info.value.details()
            with pytest.raises(grpc.RpcError) as info:
                list(pb_grpc.SegmentationServiceStub(channel).SegmentStream(iter([pb.SegmentRequest()]), timeout=10))
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert len(_list_models(channel, (("authorization", f"Bearer {TOKEN}"),)).models) == 4
            assert len(_list_models(channel, (("authorization", f"bearer {TOKEN}"),)).models) == 4  # RFC 7235: scheme case-insensitive
            assert len(_list_models(channel, (("authorization", f"BEARER  {TOKEN} "),)).models) == 4
            for _ in range(50):
                with pytest.raises(grpc.RpcError):
                    _list_models(channel, (("authorization", "Bearer wrong"),))
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert client_main(["--address", running.address, "--token", TOKEN, "models"]) == 0
        assert client_main(["--address", running.address, "--token", "nope", "models"]) == 2
    finally:
        running.stop()
    assert TOKEN not in caplog.text and "other-token" not in caplog.text
    assert TOKEN not in repr(make_settings(auth_tokens=TOKEN))
    refusals = [r for r in caplog.records if "without a valid bearer token" in r.getMessage()]
    assert len(refusals) == 1, "54 refusals within seconds: one log line (rate-limited), not one each"


def test_client_over_mutual_tls(pki: dict[str, Path]) -> None:
    running = BackgroundServer(make_settings(tls_cert=pki["server_crt"], tls_key=pki["server_key"], tls_client_ca=pki["ca"]))
    try:
        address = f"localhost:{running.server.port}"
        assert client_main(["--address", address, "--tls-ca", str(pki["ca"]), "--tls-cert", str(pki["client_crt"]),
                            "--tls-key", str(pki["client_key"]), "models"]) == 0
    finally:
        running.stop()


def test_misconfigured_tls_is_refused(pki: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="must be set together"):
        server_credentials(make_settings(tls_cert=pki["server_crt"]))
    with pytest.raises(ValueError, match="mutual TLS runs over TLS"):
        server_credentials(make_settings(tls_client_ca=pki["ca"]))
