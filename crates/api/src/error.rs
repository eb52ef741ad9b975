//! Errors as the API answers them: `{"error": {"code": "...", "message": "..."}}` with the
//! HTTP status that goes with the code.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`not_found`, `bad_request`, …).
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// 404: no such thing on this node.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// 401: a change without the cookie's token.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "changes need `Authorization: Bearer <token>` with the token from the \
                      node's cookie file"
                .into(),
        }
    }

    /// 422: well-formed, but the node refuses it (an invalid transfer).
    pub fn refused(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "refused",
            message: message.into(),
        }
    }

    /// 503: the node has stopped.
    pub fn stopped() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "node_stopped",
            message: "the node has stopped".into(),
        }
    }

    /// 500: the node's database failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }
}

impl From<powchain_protocol::LookupError> for ApiError {
    /// Nothing found is 404; several found is 409 `ambiguous`, the message listing them.
    fn from(error: powchain_protocol::LookupError) -> ApiError {
        use powchain_chain::MatchError;
        use powchain_protocol::LookupError;
        match error {
            LookupError::Match(MatchError::Several { .. }) => ApiError {
                status: StatusCode::CONFLICT,
                code: "ambiguous",
                message: error.to_string(),
            },
            LookupError::Match(MatchError::None { .. }) | LookupError::NoHeight(_) => {
                ApiError::not_found(error.to_string())
            }
            LookupError::Store(message) => ApiError::internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "bad_json",
        };
        ApiError {
            status,
            code,
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}
