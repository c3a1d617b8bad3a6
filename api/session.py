"""The web page's sign-in: ``/auth/session`` sets, reports and clears the cookie.

``POST`` with ``{"token": "..."}`` signs in (204 and the cookie), ``GET`` says
who the caller is and whether authentication is off, ``DELETE`` signs out.
Errors are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.auth import (
    OPEN,
    SESSION_COOKIE,
    Authenticator,
    AuthRefused,
    check_same_origin,
    is_local_caller,
    normalize_origin,
    own_origin,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/auth")


def _auth(request: Request) -> Authenticator:
    return request.app.state.tickwork.auth


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@router.post("/session", status_code=204, response_class=Response)
async def sign_in(request: Request) -> Response:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie."""
    # No Origin is fine (a script signing in for itself), a foreign one is not:
    # another site has no business signing a browser in.
    origin = request.headers.get("origin")
    if origin is not None and normalize_origin(origin) != own_origin(request):
        return _error(403, f"cross-site sign-in refused from {origin}")
    try:
        body = await request.json()
    except ValueError:
        body = None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return _error(400, 'expected a JSON body {"token": "<token>"}')
    try:
        principal = await _auth(request).principal_for(token)
    except AuthRefused as exc:
        return _error(exc.status, exc.message)
    logger.info("signed in: token=%s scope=%s", principal.name, principal.scope)
    response = Response(status_code=204)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.get("/session")
async def session_state(request: Request) -> JSONResponse:
    """Whether authentication is off, and who the caller is signed in as."""
    auth = _auth(request)
    try:
        principal = await auth.from_request(request)
    except AuthRefused:
        principal = None  # a revoked or unknown token in the cookie
    return JSONResponse(
        {
            "open": auth.open and is_local_caller(request),
            "authenticated": principal is not None,
            "scope": principal.scope.value if principal else None,
            "name": principal.name if principal and principal is not OPEN else None,
        }
    )


@router.delete("/session", status_code=204, response_class=Response)
async def sign_out(request: Request) -> Response:
    """Clear the cookie; with one, only from our own origin."""
    if request.cookies.get(SESSION_COOKIE):
        try:
            check_same_origin(request)
        except AuthRefused as exc:
            return _error(exc.status, exc.message)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
