"""The simulator's error tree, and the codes it answers with.

```
ApiError                      -> envelope {statusCode, message, apiCode, requestId}, HTTP 200
├── statusCode 400            validation, uniqueness, refused operations
├── statusCode 401            missing / invalid / expired token, wrong pool header
└── statusCode 404            unknown user, department, organization, webhook
```

Real Authing answers business errors with HTTP 200 and the error in the body, so clients
must read the body. The v3 ``apiCode`` table is not public; where the v2 table has a
matching code we reuse it (reference §3), otherwise we use the codes below, chosen here.
"""

from __future__ import annotations

# v2 codes (reference §3) that plausibly carry over.
NO_PERMISSION = 1001
USER_NOT_FOUND = 2004
USER_EXISTS = 2026  # externalId taken
USERNAME_EXISTS = 2034
PHONE_EXISTS = 2035
EMAIL_EXISTS = 2200
USERPOOL_NOT_FOUND = 2224
MISSING_PARAMS = 2231
TOO_MANY_USERS = 2030
# Simulator-chosen codes: no public equivalent.
INVALID_PARAM = 2232
NOT_FOUND = 2404
CONFLICT = 2409
REFUSED = 2410

USER_NOT_FOUND_MESSAGE = "用户不存在"


class ApiError(Exception):
    """A business error the API answers in the envelope (never a Python traceback)."""

    def __init__(self, status: int, message: str, api_code: int) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.api_code = api_code


def bad_param(name: str) -> ApiError:
    """The wording real Authing uses for a malformed parameter: ``参数 <name> 格式错误``."""
    return ApiError(400, f"参数 {name} 格式错误", INVALID_PARAM)


def bad_request(message: str, api_code: int = INVALID_PARAM) -> ApiError:
    return ApiError(400, message, api_code)


def missing(name: str) -> ApiError:
    return ApiError(400, f"参数 {name} 不能为空 (missing required parameter {name})",
                    MISSING_PARAMS)


def not_found(message: str) -> ApiError:
    return ApiError(404, message, NOT_FOUND)


def user_not_found() -> ApiError:
    return ApiError(404, USER_NOT_FOUND_MESSAGE, USER_NOT_FOUND)


def org_not_found(code: str) -> ApiError:
    return ApiError(404, f"organization not found for code: {code}", NOT_FOUND)


def department_not_found(department_id: str) -> ApiError:
    return ApiError(404, f"department not found: {department_id}", NOT_FOUND)


def conflict(message: str, api_code: int = CONFLICT) -> ApiError:
    return ApiError(400, message, api_code)


def refused(message: str) -> ApiError:
    return ApiError(400, message, REFUSED)


def unauthorized(message: str, api_code: int = NO_PERMISSION) -> ApiError:
    return ApiError(401, message, api_code)
