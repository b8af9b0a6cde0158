"""``proctor serve``: the whole exam service on one laptop.

The emulator, the stack (the template's data plane), the user pool (from the
template's Cognito properties), the chunk router, the consumer with the exam
gate on, the alert forwarder, and the local HTTP server with the API, its
OpenAPI document, the live alert stream and the web app's files
(``PROCTOR_STATIC_DIR``). ``--user EMAIL:GROUP`` creates users and prints, for
each, a way in (``way_in``: a proctor's signed-in console link, a student's page
with the password to sign in on it; the users live in the local emulator only)
and an id token, valid for an hour.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Callable

from cli.console import serving_api
from cli.services import run_services
from infrastructure.emulator import Emulator
from infrastructure.local import add_user, provision, provision_identity, sign_in
from lambdas.api.services import open_services
from proctoring.errors import ProctoringError
from proctoring.settings import Settings

__all__ = ["serve_locally", "way_in"]

_GROUPS = ("proctor", "student", "admin")


def way_in(url: str, email: str, group: str, password: str, token: str) -> str:
    """The line that tells ``email`` how to open their page on the local server at ``url``.

    A student's page needs the exam (``?exam=``), which exists only once a proctor creates
    it: the console shows that link; the student signs in on it with the password (the
    page renews its token, an exam may outlast the hour of ``token``)."""
    if group == "student":
        return (
            f"# student {email}: open {url}/student.html?exam=<exam-id> (the console's student "
            f"link for the exam) and sign in as {email}, password {password}"
        )
    return (
        f"# {group} {email}: {url}/console.html#token={token} (signed in for an hour; "
        f"or sign in as {email}, password {password})"
    )


async def serve_locally(
    settings: Settings, *, users: list[str], out: Callable[[str], None] = print
) -> None:
    wanted = []
    for spec in users:
        email, _, group = spec.rpartition(":")
        if group not in _GROUPS or "@" not in email:
            raise ProctoringError(f"--user {spec!r}: expected EMAIL:GROUP, group one of {_GROUPS}")
        wanted.append((email, group))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with Emulator(settings.host, settings.port) as emulator:
        settings = settings.model_copy(update={"endpoint_url": emulator.endpoint_url})
        outputs = provision(settings)
        identity = provision_identity(settings)
        settings = settings.model_copy(
            update={
                "alerts_topic_arn": outputs["AlertsTopicArn"],
                "user_pool_id": identity["UserPoolId"],
                "user_pool_client_id": identity["UserPoolClientId"],
                "jwks_url": identity["JwksUrl"],
            }
        )
        tokens = {}
        ways = []
        for email, group in wanted:
            password = secrets.token_urlsafe(12) + "aA1"
            await asyncio.to_thread(add_user, settings, email, group, password)
            tokens[email] = (await asyncio.to_thread(sign_in, settings, email, password))["IdToken"]
            ways.append((email, group, password))  # it signed in: the password works
        async with (
            open_services(settings) as services,
            serving_api(services, settings) as url,
        ):
            out(f"export PROCTOR_ENDPOINT_URL={emulator.endpoint_url}")
            out(f"export PROCTOR_PREFIX={settings.prefix}")
            out(f"export PROCTOR_ALERTS_TOPIC_ARN={settings.alerts_topic_arn}")
            out(f"export PROCTOR_USER_POOL_ID={settings.user_pool_id}")
            out(f"export PROCTOR_USER_POOL_CLIENT_ID={settings.user_pool_client_id}")
            out(f"export PROCTOR_JWKS_URL={settings.jwks_url}")
            out(f"# the API: {url} (OpenAPI document: {url}/openapi.json)")
            out(f"# proctor console: {url}/console.html")
            out(f"# a student's exam page: {url}/student.html?exam=<exam id>")
            for email, group, password in ways:
                out(way_in(url, email, group, password, tokens[email]))
            for email, token in tokens.items():
                variable = "TOKEN_" + "".join(c if c.isalnum() else "_" for c in email).upper()
                out(f"export {variable}={token}")
            await run_services(settings, stop, forwarder=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
