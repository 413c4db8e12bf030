"""How the researcher API describes itself in its OpenAPI schema beyond what
drf-spectacular infers: the bearer-token scheme, and the error body on every operation.

Imported by `ParityConfig.ready`, so the extension is registered before any schema is made.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from parity.auth import BearerTokenAuthentication
from workspaces.drf import error_body


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The bearer scheme of `BearerTokenAuthentication`."""

    target_class = BearerTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal token made on /tokens/: `Authorization: Bearer pty_…`.",
        }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable, machine-readable: not_found, parse_error, …"},
                "message": {"type": "string", "description": "For people."},
                "field": {
                    "type": "string",
                    "nullable": True,
                    "description": "The request field at fault (dotted for nested ones), or null.",
                },
                "details": {"description": "Every message by field, for validation errors."},
            },
            "required": ["code", "message", "field"],
        }
    },
    "required": ["error"],
}
ERROR_EXAMPLES = {
    "400": ("Invalid input", error_body(
        "unknown_field", "Unknown field.", "colour", details={"colour": ["Unknown field."]}
    )),
    "401": ("No credentials", error_body("not_authenticated", "Authentication credentials were not provided.")),
    "403": ("Not allowed", error_body("permission_denied", "Viewers of this workspace cannot change it.")),
    "404": ("Not found, or not in your workspaces", error_body("not_found", "Not found.")),
    "409": ("Conflict", error_body("name_taken", "The workspace already has a generator named 'ladder-M'.", "name")),
    "415": ("Unsupported media type", error_body(
        "unsupported_media_type", 'Unsupported media type "text/plain" in request.'
    )),
    "429": ("Too many writes", error_body("throttled", "Request was throttled. Expected available in 12 seconds.")),
}
WRITE_METHODS = {"post", "put", "patch", "delete"}


def schema_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: document the error body on every API operation."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            codes = ["401", "403"]
            if method in WRITE_METHODS:
                # 415: a body in a media type the operation does not parse (or a broken one).
                codes += ["400", "409", "415", "429"]
            elif query:
                codes.append("400")
            # A path's unknown object; for a list, DRF's answer to a page past the last.
            if "{" in path or method in WRITE_METHODS or any(p.get("name") == "page" for p in query):
                codes.append("404")
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                if code in responses:
                    continue
                summary, example = ERROR_EXAMPLES[code]
                responses[code] = {
                    "description": summary,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"},
                            "examples": {"error": {"summary": summary, "value": example}},
                        }
                    },
                }
    return result
