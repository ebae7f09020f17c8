"""The MLflow model registry read over its REST API, with the standard library: the calls the service needs and no more.

MLflow's own client (``mlflow-skinny``) costs the service ~120 MiB of memory per worker once imported (measured:
RSS 65 -> 186 MiB) and brings some twenty packages (OpenTelemetry, the Databricks SDK, GitPython, cryptography) that
serving never uses. The service needs three requests against the tracking server the stack runs (``mlflow server
--serve-artifacts``): the version an alias names, where that version's artifacts are, and two files from there. The
registry stays the source of truth; these are the same endpoints MLflow's client calls (tests/mlflow checks them
against the real server, the images tier against the image).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field


class RegistryError(Exception):
    """The registry answered with an error (``error_code`` as MLflow names it) or not at all (``error_code`` "")."""

    def __init__(self, message: str, error_code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.error_code, self.status = error_code, status


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    tags: dict[str, str] = field(default_factory=dict)


class RegistryClient:
    """``tracking_uri`` is the server's base URL (http or https), as MLFLOW_TRACKING_URI gives it."""

    def __init__(self, tracking_uri: str, timeout: float = 10.0) -> None:
        self.base = tracking_uri.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        url = f"{self.base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()[:2000]
            try:
                err = json.loads(body)
                code, msg = str(err.get("error_code", "")), str(err.get("message", ""))
            except (ValueError, AttributeError):
                code, msg = "", body.decode(errors="replace")
            raise RegistryError(f"{code or 'HTTP ' + str(exc.code)}: {msg}"[:500], code, exc.code) from None

    def _json(self, path: str, params: dict[str, str]) -> dict:
        return json.loads(self._get(path, params))

    def version_by_alias(self, name: str, alias: str) -> ModelVersion:
        mv = self._json("/api/2.0/mlflow/registered-models/alias", {"name": name, "alias": alias})["model_version"]
        tags = {t["key"]: t.get("value", "") for t in mv.get("tags") or []}
        return ModelVersion(mv["name"], str(mv["version"]), tags)

    def download_uri(self, name: str, version: str) -> str:
        """Where the version's files are, resolved as MLflow's client resolves it: a ``runs:/<id>/<path>`` source
        through the run's artifact root, a ``models:/<model id>`` one through the logged model's."""
        uri = self._json("/api/2.0/mlflow/model-versions/get-download-uri",
                         {"name": name, "version": version})["artifact_uri"]
        runs = re.match(r"^runs:/([^/]+)/?(.*)$", uri)
        if runs:
            root = self._json("/api/2.0/mlflow/runs/get", {"run_id": runs.group(1)})["run"]["info"]["artifact_uri"]
            return f"{root.rstrip('/')}/{runs.group(2)}".rstrip("/")
        logged = re.match(r"^models:/(m-[^/]+)$", uri)
        if logged:
            return json.loads(self._get(f"/api/2.0/mlflow/logged-models/{logged.group(1)}"))["model"]["info"][
                "artifact_uri"]
        return uri

    def artifact(self, artifact_uri: str, relative: str) -> bytes:
        """One file under ``artifact_uri``: through the server's artifact proxy (``mlflow-artifacts:``) or plain HTTP."""
        parts = urllib.parse.urlsplit(artifact_uri)
        quoted = urllib.parse.quote(f"{parts.path.strip('/')}/{relative}")
        if parts.scheme == "mlflow-artifacts":
            # mlflow-artifacts:/path is served by the tracking server itself; mlflow-artifacts://host:port/path by host
            base = f"{urllib.parse.urlsplit(self.base).scheme}://{parts.netloc}" if parts.netloc else self.base
            return RegistryClient(base, self.timeout)._get(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}")
        if parts.scheme in ("http", "https"):
            return RegistryClient(f"{parts.scheme}://{parts.netloc}", self.timeout)._get(f"/{quoted}")
        raise RegistryError(f"artifact URI {artifact_uri!r}: the service reads artifacts through the MLflow server "
                            "(mlflow server --serve-artifacts gives mlflow-artifacts:/ URIs) or over HTTP only",
                            "UNSUPPORTED_ARTIFACT_URI")
