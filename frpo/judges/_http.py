"""One JSON POST to an OpenAI-compatible endpoint, with a timeout and bounded retries.

Standard library only (``urllib``), so the API judges need no client package. Keys come from the
environment (the variable's name is configurable, its value is never logged).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from frpo.judges.base import JudgeError

# 429 (rate limit) and 5xx are worth another try; other 4xx mean the request itself is wrong.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class Endpoint:
    """Where and how to call an OpenAI-compatible API.

    Attributes:
        base_url: e.g. ``https://api.openai.com/v1`` or a vLLM server's ``http://host:8000/v1``.
        api_key_env: name of the environment variable holding the key; an empty variable name
            means "no key" (a local vLLM server).
        timeout: seconds per request.
        max_retries: further tries after the first (so ``max_retries + 1`` requests at most).
        backoff: the wait before retry ``k`` (1-based) is ``backoff * 2 ** (k - 1)`` seconds.
    """

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 4
    backoff: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self):
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")

    def api_key(self) -> str | None:
        """The key from the environment; JudgeError when the named variable is unset."""
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise JudgeError(
                f"environment variable {self.api_key_env} is not set: export the API key for "
                f"{self.base_url} (or pass api_key_env='' for an endpoint without a key)"
            )
        return key

    def post(self, route: str, payload: dict) -> dict:
        """POST ``payload`` as JSON to ``base_url/route``; the decoded JSON reply.

        Retries connection errors, timeouts, 429 and 5xx with exponential backoff; raises
        JudgeError at once on another 4xx and after the last retry otherwise.
        """
        url = self.base_url.rstrip("/") + "/" + route.lstrip("/")
        headers = {"Content-Type": "application/json"}
        key = self.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        body = json.dumps(payload).encode()
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode())
            except urllib.error.HTTPError as err:
                detail = err.read().decode(errors="replace")[:200]
                last_error = f"HTTP {err.code}: {detail}"
                if err.code not in RETRY_STATUS:
                    raise JudgeError(f"{url} refused the request ({last_error})") from err
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last_error = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            except json.JSONDecodeError as err:
                last_error = f"reply is not JSON ({err})"
        raise JudgeError(
            f"{url} failed after {self.max_retries + 1} tries; last error: {last_error}"
        )
