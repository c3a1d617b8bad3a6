"""What runs may reach: a daemon refuses metadata and (unless allowed) private
targets before connecting, and connects only to the addresses it checked.

Targets are real servers on loopback addresses (127.0.0.1, .2, .3), names are
answered by a real DNS server on loopback (:class:`StubDns`) that the daemon's
resolver asks through ``TICKWORK_DNS_SERVERS``, and what was connected is read
at the socket (:class:`Connections`), not inferred from the servers alone.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import psycopg
import pytest
import trustme
from cryptography.fernet import Fernet

from shared.actions import Action
from shared.egress import EgressPolicy
from shared.http import EGRESS_PERMANENT, ClientIdentity, DeliveryError, HttpClient
from shared.schedule import Schedule
from shared.secrets import SecretBox, parse_keys, seal_headers
from tests.support.daemons import one_pass, settings_for, webhook
from tests.support.dns import StubDns
from tests.support.hostile import Hostile, server_context
from tests.support.jobs import attempts_of, db_now, executions_of, insert_job
from tests.support.proxy import Proxy
from tests.support.sockets import Connections
from tests.support.target import Received, Target

TRANSPORTS = pytest.mark.parametrize("transport", ["aiohttp", "httpx"])

PRIVATE_HINT = "set TICKWORK_ALLOW_PRIVATE_TARGETS=true"


@pytest.fixture
def target() -> Iterator[Hostile]:
    with Hostile() as server:
        yield server


async def one_off(db: psycopg.AsyncConnection, action: Action, **columns: Any) -> Any:
    """A job due now, inserted as the API would store it (the API's own check
    of IP literals is skipped, so the daemon's is what is tested)."""
    return await insert_job(
        db, schedule=Schedule(kind="at", at=await db_now(db)), action=action, **columns
    )


async def outcome(db: psycopg.AsyncConnection, job_id: uuid.UUID) -> dict[str, Any]:
    [execution] = await executions_of(db, job_id)
    execution["attempts"] = await attempts_of(db, execution["id"])
    return execution


async def run(database_url: str, **settings: object) -> None:
    """One daemon pass with private targets off unless said otherwise."""
    settings.setdefault("allow_private_targets", False)
    await one_pass(settings_for(database_url, **settings))


def assert_refused(execution: dict[str, Any], *words: str) -> None:
    """Failed at once (no retry), with an error holding ``words``."""
    assert execution["status"] == "FAILED", execution
    assert len(execution["attempts"]) == 1
    error = execution["error"]
    assert error.count("refused: ") == 1, error
    assert f"not retried ({EGRESS_PERMANENT})" in error, error
    for word in words:
        assert word in error, (word, error)


def same_port_pair(first_host: str, second_host: str) -> tuple[Hostile, Hostile]:
    """Two servers on one port of two loopback addresses: a name answered with
    either address leads to one of them."""
    first = Hostile(host=first_host)
    return first, Hostile(host=second_host, port=first.port)


# -- metadata and link-local ---------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
async def test_a_metadata_address_is_refused_without_a_connection_whatever_is_allowed(
    database_url: str, db: psycopg.AsyncConnection, transport: str, url: str
) -> None:
    """Even with private targets allowed and the address on the allow-list, a
    metadata address fails at once, naming the address and the rule, and no
    socket connects to it."""
    job = await one_off(db, webhook(url), max_retries=3)

    with Connections() as seen:
        await run(
            database_url,
            allow_private_targets=True,
            egress_allow="169.254.0.0/16,fd00:ec2::/32,100.64.0.0/10",
            http_transport=transport,
        )

    execution = await outcome(db, job)
    assert_refused(execution, "never allowed", "metadata")
    assert seen.addresses == []


async def test_a_name_that_resolves_to_the_metadata_address_is_refused(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    with StubDns({"metadata.test": "169.254.169.254"}) as dns:
        job = await one_off(db, webhook("http://metadata.test/latest/"))
        with Connections() as seen:
            await run(
                database_url, allow_private_targets=True, dns_servers=dns.nameserver
            )

    execution = await outcome(db, job)
    assert_refused(execution, "metadata.test resolves to 169.254.169.254")
    assert dns.queries["metadata.test"] >= 1
    assert seen.addresses == []


# -- private addresses behind names --------------------------------------------


@TRANSPORTS
async def test_a_name_that_resolves_to_a_private_address_is_refused_by_default(
    database_url: str, db: psycopg.AsyncConnection, target: Hostile, transport: str
) -> None:
    with StubDns({"hooks.test": "127.0.0.1"}) as dns:
        job = await one_off(
            db, webhook(f"http://hooks.test:{target.port}/ok"), max_retries=3
        )
        with Connections() as seen:
            await run(
                database_url, dns_servers=dns.nameserver, http_transport=transport
            )

    execution = await outcome(db, job)
    assert_refused(
        execution, "hooks.test resolves to 127.0.0.1", "loopback", PRIVATE_HINT
    )
    assert dns.queries["hooks.test"] >= 1
    assert target.connections == 0
    assert seen.to_port(target.port) == []


@TRANSPORTS
async def test_the_same_name_is_reached_when_private_targets_are_allowed(
    database_url: str, db: psycopg.AsyncConnection, target: Hostile, transport: str
) -> None:
    with StubDns({"hooks.test": "127.0.0.1"}) as dns:
        job = await one_off(db, webhook(f"http://hooks.test:{target.port}/ok"))
        with Connections() as seen:
            await run(
                database_url,
                allow_private_targets=True,
                dns_servers=dns.nameserver,
                http_transport=transport,
            )

    assert (await outcome(db, job))["status"] == "SUCCEEDED"
    assert target.requests == ["/ok"]
    assert set(seen.to_port(target.port)) == {"127.0.0.1"}


@TRANSPORTS
async def test_a_name_that_rebinds_to_a_private_address_cannot_be_connected_to_it(
    database_url: str, db: psycopg.AsyncConnection, transport: str
) -> None:
    """The name answers 127.0.0.2 (allowed) to its first lookup and 127.0.0.3
    (refused) to every later one. A client that checked one answer and then
    looked the name up again to connect would reach 127.0.0.3; this one
    connects to the address it checked."""
    allowed, refused = same_port_pair("127.0.0.2", "127.0.0.3")
    with allowed, refused, StubDns({"rebind.test": ["127.0.0.2", "127.0.0.3"]}) as dns:
        job = await one_off(db, webhook(f"http://rebind.test:{allowed.port}/ok"))
        with Connections() as seen:
            await run(
                database_url,
                egress_allow="127.0.0.2/32",
                dns_servers=dns.nameserver,
                http_transport=transport,
            )

    assert (await outcome(db, job))["status"] == "SUCCEEDED"
    assert allowed.requests == ["/ok"]
    assert refused.connections == 0
    assert set(seen.to_port(allowed.port)) == {"127.0.0.2"}


async def test_the_quote_source_is_the_operators_choice_and_not_checked(
    database_url: str, db: psycopg.AsyncConnection, target: Hostile
) -> None:
    """A fetch without a URL reaches TICKWORK_QUOTE_URL on loopback with private
    targets off; a job naming the same URL itself is refused."""
    quote_job = await one_off(db, Action(kind="fetch"))
    named_job = await one_off(db, Action(kind="fetch", url=target.url("/ok")))

    await run(database_url, quote_url=target.url("/ok"))

    assert (await outcome(db, quote_job))["status"] == "SUCCEEDED"
    assert_refused(await outcome(db, named_job), "127.0.0.1", PRIVATE_HINT)
    assert target.requests == ["/ok"]


# -- IP literals ----------------------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "0.0.0.0",
        "2130706433",
        "0x7f000001",
        "127.1",
    ],
)
async def test_loopback_spelled_as_an_ip_literal_is_refused_without_a_connection(
    target: Hostile, transport: str, host: str
) -> None:
    """Every spelling of the target's loopback address, mapped and decimal forms
    included (0.0.0.0 reaches loopback on Linux), is refused for good and
    nothing connects to the target's port."""
    client = HttpClient(transport=transport)  # type: ignore[arg-type]
    try:
        with Connections() as seen:
            with pytest.raises(DeliveryError) as caught:
                await client.request(
                    "GET", f"http://{host}:{target.port}/ok", time_limit=5
                )
    finally:
        await client.aclose()

    assert caught.value.permanent is not None, str(caught.value)
    assert target.connections == 0
    assert seen.to_port(target.port) == []


@TRANSPORTS
async def test_the_same_literal_is_reached_when_private_targets_are_allowed(
    target: Hostile, transport: str
) -> None:
    """The control for the test above: the address is reachable, and the
    socket-level record sees the connection."""
    client = HttpClient(
        transport=transport,  # type: ignore[arg-type]
        egress=EgressPolicy.permissive(),
    )
    try:
        with Connections() as seen:
            response = await client.request(
                "GET", f"http://[::ffff:127.0.0.1]:{target.port}/ok", time_limit=5
            )
    finally:
        await client.aclose()

    assert response.status == 200
    assert seen.to_port(target.port)


# -- allow- and deny-lists -----------------------------------------------------


async def test_the_allow_list_limits_runs_to_its_entries_and_lifts_the_private_rule(
    database_url: str, db: psycopg.AsyncConnection
) -> None:
    """With private targets off, 127.0.0.2/32 on the allow-list is reached and
    127.0.0.3, on the same port but not listed, is not."""
    listed, unlisted = same_port_pair("127.0.0.2", "127.0.0.3")
    with listed, unlisted:
        reached = await one_off(db, webhook(f"{listed.base_url}/ok"))
        refused = await one_off(db, webhook(f"{unlisted.base_url}/ok"))
        await run(database_url, egress_allow="127.0.0.2/32")

    assert (await outcome(db, reached))["status"] == "SUCCEEDED"
    assert_refused(
        await outcome(db, refused), "127.0.0.3 is not in TICKWORK_EGRESS_ALLOW"
    )
    assert unlisted.connections == 0


async def test_an_allowed_host_name_is_reached_at_its_private_address(
    database_url: str, db: psycopg.AsyncConnection, target: Hostile
) -> None:
    with StubDns({"hooks.internal.test": "127.0.0.1"}) as dns:
        job = await one_off(db, webhook(f"http://hooks.internal.test:{target.port}/ok"))
        await run(
            database_url, egress_allow=".internal.test", dns_servers=dns.nameserver
        )

    assert (await outcome(db, job))["status"] == "SUCCEEDED"


async def test_the_deny_list_wins_over_the_allow_list_and_private_targets(
    database_url: str, db: psycopg.AsyncConnection, target: Hostile
) -> None:
    """A denied name is refused before it is looked up; a denied network is
    refused even when private targets are on and the allow-list covers it."""
    with StubDns({"hooks.test": "127.0.0.1"}) as dns:
        by_name = await one_off(db, webhook(f"http://hooks.test:{target.port}/ok"))
        by_network = await one_off(db, webhook(f"{target.base_url}/ok"))
        await run(
            database_url,
            allow_private_targets=True,
            egress_allow="127.0.0.0/8,hooks.test",
            egress_deny="hooks.test,127.0.0.1/32",
            dns_servers=dns.nameserver,
        )

    assert_refused(
        await outcome(db, by_name), "hooks.test matches TICKWORK_EGRESS_DENY"
    )
    assert_refused(
        await outcome(db, by_network),
        "127.0.0.1 matches TICKWORK_EGRESS_DENY entry 127.0.0.1/32",
    )
    assert dns.queries["hooks.test"] == 0
    assert target.connections == 0


# -- redirects -----------------------------------------------------------------


@TRANSPORTS
@pytest.mark.parametrize("by", ["address", "name"])
async def test_a_redirect_to_a_private_address_is_refused_at_that_hop(
    database_url: str, db: psycopg.AsyncConnection, transport: str, by: str
) -> None:
    """An allowed server redirects to a refused one (by address, or by a name
    that resolves to it): the first hop is made, the second is not."""
    allowed, inside = Hostile(host="127.0.0.2"), Hostile(host="127.0.0.3")
    host = "127.0.0.3" if by == "address" else "inside.test"
    with allowed, inside, StubDns({"inside.test": "127.0.0.3"}) as dns:
        hop = quote(f"http://{host}:{inside.port}/ok", safe="")
        job = await one_off(
            db, webhook(f"{allowed.base_url}/to/{hop}", follow_redirects=True)
        )
        await run(
            database_url,
            egress_allow="127.0.0.2/32",
            dns_servers=dns.nameserver,
            http_transport=transport,
        )

    execution = await outcome(db, job)
    assert_refused(execution, "127.0.0.3", "not in TICKWORK_EGRESS_ALLOW")
    # aiohttp sends the path with ':' unquoted; it is the same path.
    assert [unquote(path) for path in allowed.requests] == [unquote(f"/to/{hop}")]
    assert inside.connections == 0


# The job's secret headers, sealed as the API stores them, and a credential
# header kept in plain by a job stored before such headers were sealed.
REDIRECT_SECRETS = {
    "Authorization": "Bearer redirect-auth-1c4e",
    "Cookie": "session=redirect-cookie-8d02",
    "X-Pin": "redirect-pin-5b7a",
}
PLAIN_CREDENTIAL = ("X-Api-Key", "redirect-plain-key-9e31")


async def follow_with_secrets(
    database_url: str, db: psycopg.AsyncConnection, url: str, transport: str
) -> None:
    """One run of a job with every kind of secret header that follows
    redirects from ``url``."""
    key = Fernet.generate_key().decode()
    action = webhook(
        url,
        follow_redirects=True,
        headers={"X-Team": "blue", PLAIN_CREDENTIAL[0]: PLAIN_CREDENTIAL[1]},
        secret_headers=sorted(REDIRECT_SECRETS),
    )
    sealed = seal_headers(SecretBox(parse_keys(key)), REDIRECT_SECRETS)
    job = await one_off(db, action, secret_headers=sealed)
    await run(
        database_url,
        allow_private_targets=True,
        http_transport=transport,
        secret_key=key,
    )
    assert (await outcome(db, job))["status"] == "SUCCEEDED"


def secrets_in(request: Received) -> set[str]:
    values = request.headers.values()
    wanted = [*REDIRECT_SECRETS.values(), PLAIN_CREDENTIAL[1]]
    return {secret for secret in wanted if any(secret in v for v in values)}


@TRANSPORTS
async def test_a_cookie_one_target_sets_is_not_sent_with_later_requests(
    transport: str,
) -> None:
    """Runs of every job share the daemon's client: a cookie one target sets
    must not travel with the next request to that host, which may be another
    job's."""
    client = HttpClient(transport=transport, egress=EgressPolicy.permissive())
    try:
        with Target() as target:
            for path in ("/set-cookie", "/ok"):
                response = await client.request("GET", target.url(path), time_limit=5)
                assert response.status == 200
            later = target.requests[-1]
    finally:
        await client.aclose()

    assert later.path == "/ok"
    assert "cookie" not in later.headers


@TRANSPORTS
async def test_a_redirect_to_another_origin_goes_without_the_secret_headers(
    database_url: str, db: psycopg.AsyncConnection, transport: str
) -> None:
    """A target redirects to a server on another port, which could be anyone's:
    Authorization, the cookie, the job's secret header and a header named as
    a credential stay behind, and the plain headers go on."""
    with Hostile() as first, Target() as elsewhere:
        hop = quote(elsewhere.url("/collect"), safe="")
        await follow_with_secrets(database_url, db, first.url(f"/to/{hop}"), transport)
        [received] = elsewhere.wait_for(1)

    assert [unquote(path) for path in first.requests] == [unquote(f"/to/{hop}")]
    assert received.path == "/collect"
    assert received.headers["x-team"] == "blue"
    assert secrets_in(received) == set()
    assert not {"authorization", "cookie", "x-pin", "x-api-key"} & set(received.headers)


@TRANSPORTS
async def test_a_redirect_within_the_origin_keeps_the_secret_headers(
    database_url: str, db: psycopg.AsyncConnection, transport: str
) -> None:
    with Target() as target:
        await follow_with_secrets(database_url, db, target.url("/redirect"), transport)
        first, second = target.wait_for(2)

    assert (first.path, second.path) == ("/redirect", "/ok")
    assert second.headers["x-team"] == "blue"
    # httpx sends no Cookie header on to any redirect, whatever its origin.
    kept = set(REDIRECT_SECRETS.values()) - {REDIRECT_SECRETS["Cookie"]}
    assert secrets_in(second) >= {*kept, PLAIN_CREDENTIAL[1]}


# -- certificates --------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@TRANSPORTS
async def test_a_job_with_its_own_ca_bundle_verifies_a_server_of_that_ca(
    database_url: str, db: psycopg.AsyncConnection, ca: trustme.CA, transport: str
) -> None:
    """The server's certificate comes from a test CA no default store trusts:
    the job that brings the CA succeeds with verification on, the one that does
    not fails verification."""
    with Hostile(tls=server_context(ca, "valid")) as server:
        pem = ca.cert_pem.bytes().decode()
        trusting = await one_off(db, webhook(f"{server.base_url}/ok", ca_bundle=pem))
        plain = await one_off(db, webhook(f"{server.base_url}/ok"))
        await run(database_url, allow_private_targets=True, http_transport=transport)

    assert (await outcome(db, trusting))["status"] == "SUCCEEDED"
    failed = await outcome(db, plain)
    assert failed["status"] == "FAILED"
    assert "certificate verification failed" in failed["error"]


async def test_the_daemons_ca_bundle_verifies_a_server_of_that_ca(
    database_url: str, db: psycopg.AsyncConnection, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(bundle)
    with Hostile(tls=server_context(ca, "valid")) as server:
        job = await one_off(db, webhook(f"{server.base_url}/ok"))
        await run(database_url, allow_private_targets=True, ca_bundle=bundle)

    assert (await outcome(db, job))["status"] == "SUCCEEDED"


@TRANSPORTS
async def test_the_client_certificate_is_presented_to_a_server_that_requires_one(
    database_url: str,
    db: psycopg.AsyncConnection,
    ca: trustme.CA,
    tmp_path: Path,
    transport: str,
) -> None:
    tls = server_context(ca, "valid")
    tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(tls)
    bundle, identity = tmp_path / "ca.pem", tmp_path / "daemon.pem"
    ca.cert_pem.write_to_path(bundle)
    cert = ca.issue_cert("daemon.test", common_name="tickwork daemon")
    cert.private_key_and_cert_chain_pem.write_to_path(identity)

    with Hostile(tls=tls) as server:
        without = await one_off(db, webhook(f"{server.base_url}/ok"))
        await run(
            database_url,
            allow_private_targets=True,
            ca_bundle=bundle,
            http_transport=transport,
        )
        presented = await one_off(db, webhook(f"{server.base_url}/ok"))
        await run(
            database_url,
            allow_private_targets=True,
            ca_bundle=bundle,
            client_cert=identity,
            http_transport=transport,
        )

    assert (await outcome(db, without))["status"] != "SUCCEEDED"
    assert (await outcome(db, presented))["status"] == "SUCCEEDED"
    assert server.requests == ["/ok"]
    [subject] = server.client_certificates
    assert (("commonName", "tickwork daemon"),) in subject


@TRANSPORTS
async def test_a_client_certificate_given_per_request_replaces_the_daemons(
    ca: trustme.CA, transport: str
) -> None:
    """The HTTP client takes a certificate and key in memory for one request
    (what a job's own client certificate needs), in place of the daemon's."""
    tls = server_context(ca, "valid")
    tls.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(tls)
    cert = ca.issue_cert("job.test", common_name="one job")
    identity = ClientIdentity(
        certificate=cert.cert_chain_pems[0].bytes().decode(),
        key=cert.private_key_pem.bytes().decode(),
    )
    client = HttpClient(
        transport=transport,  # type: ignore[arg-type]
        egress=EgressPolicy.permissive(),
    )
    pem = ca.cert_pem.bytes().decode()
    try:
        with Hostile(tls=tls) as server:
            response = await client.request(
                "GET",
                f"{server.base_url}/ok",
                time_limit=5,
                ca_bundle=pem,
                identity=identity,
            )
            with pytest.raises(DeliveryError):
                await client.request(
                    "GET", f"{server.base_url}/ok", time_limit=5, ca_bundle=pem
                )
    finally:
        await client.aclose()

    assert response.status == 200
    [subject] = server.client_certificates
    assert (("commonName", "one job"),) in subject


async def test_pools_for_jobs_own_ca_bundles_are_bounded(ca: trustme.CA) -> None:
    """Jobs with distinct CA bundles each need a pool; past the limit the least
    recently used idle ones are closed, and requests keep succeeding."""
    client = HttpClient(egress=EgressPolicy.permissive(), max_tls_pools=2)
    trusted = ca.cert_pem.bytes().decode()
    bundles = [trusted + trustme.CA().cert_pem.bytes().decode() for _ in range(5)]
    try:
        with Hostile(tls=server_context(ca, "valid")) as server:
            for bundle in [*bundles, bundles[0]]:
                response = await client.request(
                    "GET", server.url("/ok"), time_limit=5, ca_bundle=bundle
                )
                assert response.status == 200
                assert client.own_tls_pools <= 2
    finally:
        await client.aclose()

    assert len(server.requests) == 6


# -- proxy ---------------------------------------------------------------------


@TRANSPORTS
async def test_runs_go_through_the_proxy_and_a_private_target_is_still_refused(
    database_url: str, db: psycopg.AsyncConnection, ca: trustme.CA, transport: str
) -> None:
    """Through TICKWORK_PROXY_URL, an allowed target is reached over plain HTTP
    and over a CONNECT tunnel; a refused address, and a name resolving to a
    private address, never reach the proxy. The daemon connects to nothing but
    the proxy."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.2").configure_cert(tls)
    allowed, secure = Hostile(host="127.0.0.2"), Hostile(tls=tls, host="127.0.0.2")
    pem = ca.cert_pem.bytes().decode()
    with (
        Proxy() as proxy,
        allowed,
        secure,
        StubDns({"inside.test": "10.0.0.5"}) as dns,
    ):
        plain = await one_off(db, webhook(f"{allowed.base_url}/ok"))
        tunnelled = await one_off(db, webhook(f"{secure.base_url}/ok", ca_bundle=pem))
        by_address = await one_off(db, webhook("http://127.0.0.3:9/ok"))
        by_name = await one_off(db, webhook("http://inside.test/ok"))
        with Connections() as seen:
            await run(
                database_url,
                proxy_url=proxy.url,
                egress_allow="127.0.0.2/32",
                dns_servers=dns.nameserver,
                http_transport=transport,
            )

    assert (await outcome(db, plain))["status"] == "SUCCEEDED"
    assert (await outcome(db, tunnelled))["status"] == "SUCCEEDED"
    assert_refused(await outcome(db, by_address), "127.0.0.3")
    assert_refused(await outcome(db, by_name), "inside.test resolves to 10.0.0.5")
    proxy_port = int(proxy.url.rsplit(":", 1)[1])
    assert {port for _, port in seen.addresses} == {proxy_port}
    assert f"POST {allowed.base_url}/ok" in proxy.targets
    assert f"CONNECT 127.0.0.2:{secure.port}" in proxy.targets
    assert not [t for t in proxy.targets if "127.0.0.3" in t or "inside" in t]
