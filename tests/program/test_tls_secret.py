"""TLS certificates from the user: `tlsSecret` names an existing Secret (ca.crt,
tls.crt, tls.key, e.g. issued by cert-manager) that the prod program mounts instead of
generating certificates with pulumi-tls. Under Pulumi's mocks, as test_prod_program.py;
the generated path is covered there and must stay as it is."""

from __future__ import annotations

import pytest
from redis_ha.components.settings_base import SettingsError
from redis_ha.components.settings_load import load_settings

from tests.support.program import ProgramRun, plain_strings, run_program, stack_config

SECRET = "kubernetes:core/v1:Secret"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
USER_SECRET = "redis-ha-tls-from-cert-manager"


@pytest.fixture(scope="module")
def user_tls() -> ProgramRun:
    return run_program({**stack_config("prod"), "tls": "true", "tlsSecret": USER_SECRET}, stack="prod")


def _pod_spec(statefulset: object) -> dict:
    return statefulset.inputs["spec"]["template"]["spec"]  # type: ignore[attr-defined]


def test_no_certificate_is_generated_and_none_is_in_a_resource(user_tls: ProgramRun) -> None:
    assert not [r for r in user_tls.resources if r.type.startswith("tls:")]
    names = {r.inputs["metadata"]["name"] for r in user_tls.of_type(SECRET)}
    # Neither the generated key pair's Secret nor the CA's, and never the user's own.
    assert not {"redis-ha-tls", "redis-ha-ca", USER_SECRET} & names
    assert "PRIVATE KEY" not in " ".join(s for r in user_tls.resources for s in plain_strings(r.inputs))


def test_every_pod_mounts_the_users_secret_with_its_three_keys(user_tls: ProgramRun) -> None:
    statefulsets = user_tls.of_type(STATEFULSET)
    assert len(statefulsets) == 2
    for statefulset in statefulsets:
        spec = _pod_spec(statefulset)
        volumes = {v["name"]: v for v in spec["volumes"]}
        source = volumes["tls"]["secret"]
        assert source["secretName"] == USER_SECRET
        # Listed keys: a Secret without one of them stops the pod with an event naming it.
        assert source["items"] == [{"key": f, "path": f} for f in ("ca.crt", "tls.crt", "tls.key")]
        assert source["defaultMode"] == 0o440
        [init] = spec["initContainers"]
        for file_name in ("ca.crt", "tls.crt", "tls.key"):
            assert f"cp /run/redis-ha/tls/{file_name} /etc/redis-ha/{file_name}" in init["command"][-1]
        exporter = next(c for c in spec["containers"] if c["name"] == "exporter")
        assert exporter["args"] == ["--tls-ca-cert-file=/run/redis-ha/tls/ca.crt"]
    # Redis and Sentinel still speak TLS only.
    conf = next(
        v for r in user_tls.of_type(SECRET) for k, v in r.inputs["stringData"].items() if k.endswith(".redis.conf")
    )
    assert "\ntls-port 6379\n" in conf and "\nport 0\n" in conf


def test_applications_are_told_where_the_ca_is(user_tls: ProgramRun) -> None:
    cache = next(r for r in user_tls.of_type(SECRET) if r.inputs["metadata"]["name"] == "redis-ha-cache")
    assert cache.inputs["stringData"]["tls"] == "true"
    assert cache.inputs["stringData"]["caSecret"] == USER_SECRET


@pytest.mark.parametrize(
    ("config", "allowed"),
    [
        ({"tlsSecret": "Not_A_Name"}, "the name of an existing Secret in the namespace with the keys ca.crt"),
        ({"tlsSecret": 7}, "a DNS subdomain name"),
        ({"tlsSecret": "my-certs"}, "empty while tls is false"),
        ({"tls": "true", "tlsSecret": "redis-ha-ca"}, "a Secret the deployment does not create"),
        ({"tls": "true", "tlsSecret": "redis-ha-cache"}, "a Secret the deployment does not create"),
    ],
)
def test_a_bad_tls_secret_is_refused_naming_the_key(config: dict[str, object], allowed: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"backend": "kubernetes", **config})
    message = str(caught.value)
    assert "tlsSecret" in message and allowed in message, message


def test_a_bad_tls_secret_fails_the_program_before_any_resource() -> None:
    run = ProgramRun()
    with pytest.raises(Exception, match="tlsSecret") as caught:
        run_program({**stack_config("prod"), "tlsSecret": "my-certs"}, stack="prod", run=run)
    assert "empty while tls is false" in str(caught.value)
    assert not [r for r in run.resources if r.type.startswith("kubernetes:")]


def test_docker_refuses_tls_and_so_tls_secret() -> None:
    with pytest.raises(SettingsError, match="tls"):
        load_settings({"backend": "docker", "tls": "true", "tlsSecret": "my-certs"})
    assert (
        load_settings({"backend": "kubernetes", "tls": "true", "tlsSecret": "certs.example"}).tls_secret
        == "certs.example"
    )
    assert load_settings({"backend": "kubernetes", "tls": "true"}).tls_secret == ""
