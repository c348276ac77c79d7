"""Credentials out of everything we log: by key name (headers, metadata) and by value (key-looking strings).

Both sides use it: the callback before a payload leaves the proxy, the consumer on what it reads (LiteLLM's own
`aws_sqs` callback redacts nothing). Pure Python, no third-party imports.

Names are split into words ("X-Functions-Key", "apiKey", "user_api_key_alias" -> words) and judged by their words:
anything ending in a key, token, secret or password, anything about auth, cookies or credentials goes; LiteLLM's own
identity fields (key alias, team / user / org ids, the key's hash) and counts (`prompt_tokens`, `max_tokens`) stay.
Values are scanned on the serialised text (one pass, with a cheap marker check first), so a secret inside any string,
even inside a JSON document inside a string, is found.

The encoder's walk asks `key_info` / `text_needs_scan` about each name and string it copies (both memoised: a
proxy's payloads repeat the same names and most values), and runs the value regexes on the serialised text only when
one of them said so (`redact_scanned`); a string no marker, AWS word or control character can be read into is known
safe and costs one dictionary look-up.
"""

from __future__ import annotations

import base64
import binascii
import re

REDACTED = "[REDACTED]"

_KEY_WORD_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_WORDS = frozenset(
    {"authorization", "authentication", "auth", "authtoken", "authkey", "password", "passwd", "pwd", "passphrase",
     "secret", "secrets", "cookie", "cookies", "credential", "credentials", "apikey", "privatekey", "accesskey",
     "secretkey", "signature", "bearer", "jwt", "sessiontoken", "accesstoken", "idtoken", "refreshtoken"}
)  # fmt: skip
# Words that end a secret's name ("x-functions-key", "openai_key", "access_token").
_SECRET_LAST_WORDS = frozenset({"key", "token", "jwt", "pat"})
# A key named after one of these is an identifier, not a credential ("cache_key", "public_key", "model_key").
_NOT_SECRET_KEY_QUALIFIERS = frozenset(
    {"cache", "model", "idempotency", "partition", "sort", "routing", "primary", "foreign", "public", "dedup",
     "deployment", "group", "map", "object", "row", "lookup", "hash", "s3", "file", "config"}
)  # fmt: skip
# "user_api_key_alias", "aws_access_key_id": a word after "key" naming what is kept about the key.
_ID_WORDS = frozenset(
    {"alias", "id", "ids", "name", "hash", "type", "spend", "budget", "max", "team", "user", "org", "end", "request",
     "project", "models", "metadata", "count", "counts", "expires", "created", "last", "rpm", "tpm", "reset", "tags",
     "prefix", "details", "usage", "limit", "limits", "cost", "info"}
)  # fmt: skip
_AUTH_WORDS_NOT_SECRET = frozenset({"author", "authors", "authored", "authority", "authorship"})
# LiteLLM's non-secret identity fields, kept whatever the rules above would say.
ALLOWED_KEYS = frozenset(
    {"user_api_key_alias", "user_api_key_team_id", "user_api_key_user_id", "user_api_key_org_id",
     "user_api_key_team_alias", "user_api_key_end_user_id", "user_api_key_user_email", "user_api_key_hash",
     "user_api_key_request_route", "user_api_key_spend", "user_api_key_max_budget", "user_api_key_project_id",
     "key_alias", "team_id", "user_id", "cache_key", "litellm_call_id", "used_client_oauth_token"}
)  # fmt: skip

# What `key_info` says about a name: bit flags, memoised per name (a proxy logs the same few hundred names).
SECRET_NAME = 1  # its value is replaced by REDACTED
NEEDS_SCAN = 2  # the name itself holds a marker or an AWS word: the serialised text gets the value scan
KEY_INFO: dict[str, int] = {}
# The ASCII names judged plain (no flag): a dict whose names are all here needs no per-name work (`SAFE_NAMES >= d`).
SAFE_NAMES: set[str] = set()
_KEY_CACHE_MAX = 8192


def key_info(name: str) -> int:
    """SECRET_NAME and NEEDS_SCAN flags of a mapping key (memoised; read `KEY_INFO.get` first in hot loops)."""
    known = KEY_INFO.get(name)
    if known is None:
        known = (SECRET_NAME if _judge_key(name) else 0) | (NEEDS_SCAN if _judge_text(name) else 0)
        if len(KEY_INFO) >= _KEY_CACHE_MAX:
            KEY_INFO.clear()
            SAFE_NAMES.clear()
        KEY_INFO[name] = known
        if not known and type(name) is str and name.isascii():
            SAFE_NAMES.add(name)
    return known


def is_secret_key(name: str) -> bool:
    """True for names of credentials in any casing and position; ids, aliases, hashes and counts are kept."""
    return bool(key_info(name) & SECRET_NAME)


def _judge_key(name: str) -> bool:
    words = [word for word in _KEY_WORD_SPLIT.split(_CAMEL_BOUNDARY.sub("_", name).lower()) if word]
    if not words or "_".join(words) in ALLOWED_KEYS:
        return False
    for index, word in enumerate(words):
        if word in _SECRET_WORDS:
            return True
        if word.startswith("auth") and word not in _AUTH_WORDS_NOT_SECRET:
            return True
        if "secret" in word or "password" in word:
            return True
        is_last = index == len(words) - 1
        if word in _SECRET_LAST_WORDS or (word.endswith(("key", "token")) and len(word) > 5):
            previous = words[index - 1] if index else ""
            if previous in _NOT_SECRET_KEY_QUALIFIERS:
                continue
            if is_last or words[index + 1] not in _ID_WORDS:
                return True
    return False


# Values. Distinctive prefixes (sk-ant-, AKIA..., AIza, ghp_, xox?-, a JWT's eyJ...eyJ) match anywhere, even glued to
# the text before them; a plain `sk-` or a Bearer/Basic scheme only at the start of a word (inside serialised JSON a
# "\n" or "\t" escape right before counts as one), so "task-management-..." stays.
_START = r"(?:(?<![A-Za-z0-9_])|(?<=\\[nrtbf]))"
_SECRET_VALUE = re.compile(
    r"(?:"
    r"sk-(?:ant-|proj-|or-|svcacct-|admin-)[A-Za-z0-9_-]{12,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|xox[abposre]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|" + _START + r"(?:"
    r"(?P<scheme>(?i:bearer|basic))\s+(?P<credential>[A-Za-z0-9._~+/=-]{8,})"
    r"|sk-[A-Za-z0-9_-]{16,}"
    r"))"
)
_AWS_SECRET = re.compile(r"(?:(?<![A-Za-z0-9/+_])|(?<=\\[nrtbf]))[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Lower-case markers, one of which every value above contains (checked with `in` before any regex runs).
_MARKERS = ("sk-", "akia", "asia", "aiza", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "eyj",
            "bearer", "basic")  # fmt: skip
# An AWS secret access key has no marker of its own: 40 characters are looked for only where the text mentions AWS,
# a secret or an access key id (and under any secret-looking key name, by name).
_AWS_SECRET_CONTEXT = ("aws", "secret", "akia", "asia")


# Everything that makes the value scan worth running on a text: the markers, the AWS words, and control characters
# (JSON writes them as escapes such as \b or \u001e, whose letters could complete a marker in the serialised text).
_SCAN_TRIGGER = re.compile(
    "|".join(re.escape(word) for word in (*_MARKERS, *_AWS_SECRET_CONTEXT)) + "|[\x00-\x08\x0b\x0c\x0e-\x1f]"
)
TEXT_NEEDS_SCAN: dict[str, bool] = {}
_TEXT_CACHE_MAX = 8192
_TEXT_CACHE_MAX_CHARS = 256  # longer strings (prompts, answers) rarely repeat: judged every time, not kept


def _judge_text(text: str) -> bool:
    return _SCAN_TRIGGER.search(text.lower()) is not None


def text_needs_scan(text: str) -> bool:
    """True when `text` could hold (part of) a credential the value scan looks for; memoised for short strings."""
    known = TEXT_NEEDS_SCAN.get(text)
    if known is None:
        known = _judge_text(text)
        if len(text) <= _TEXT_CACHE_MAX_CHARS:
            if len(TEXT_NEEDS_SCAN) >= _TEXT_CACHE_MAX:
                TEXT_NEEDS_SCAN.clear()
            TEXT_NEEDS_SCAN[text] = known
    return known


def redact_scanned(text: str, needs_scan: bool) -> str:
    """`redact_text` for serialised text whose every name and string was judged on the way (`needs_scan` is True
    when any of them asked for the scan): text nothing asked about holds no credential-looking value."""
    return redact_text(text) if needs_scan else text


def redact_text(text: str) -> str:
    """`text` with every credential-looking value replaced by REDACTED (the scheme of `Bearer x` is kept).

    The regexes run only when a lower-case marker is in the text (`in` checks cost microseconds; the regexes cost
    a hundred times that), so ordinary prompts pay for one `lower()` and a few scans.
    """
    lowered = text.lower()
    if any(marker in lowered for marker in _MARKERS):
        text = _SECRET_VALUE.sub(_replace, text)
    if any(word in lowered for word in _AWS_SECRET_CONTEXT):
        text = _AWS_SECRET.sub(_replace_aws_secret, text)
    return text


def _replace(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    if scheme is not None:
        credential = match.group("credential")
        if not _looks_like_credential(scheme.lower(), credential):
            return match.group(0)
        return f"{scheme} {REDACTED}"
    return REDACTED


def _replace_aws_secret(match: re.Match[str]) -> str:
    return REDACTED if _looks_like_aws_secret(match.group(0)) else match.group(0)


def _looks_like_credential(scheme: str, credential: str) -> bool:
    """`Bearer <x>` / `Basic <x>` in prose ("basic understanding") is not a credential; keys and tokens are."""
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded
    return len(credential) >= 20 or any(not ch.isalpha() for ch in credential)


def _looks_like_aws_secret(candidate: str) -> bool:
    """40 base64 characters with upper, lower case and a digit (hex hashes and words have not all three)."""
    return (
        any(ch.isupper() for ch in candidate)
        and any(ch.islower() for ch in candidate)
        and any(ch.isdigit() for ch in candidate)
    )
