//! OpenAPI documentation for the layer (feature `utoipa`): [`PasswordFlowDocs`]
//! adds the OAuth2 password flow to a [utoipa] `OpenApi` document, so that
//! Swagger UI's "Authorize" button logs in at the layer's token endpoint.
//!
//! ```
//! use tower_oauth2_password::openapi::PasswordFlowDocs;
//! use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
//! use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathItem, PathsBuilder};
//! use utoipa::openapi::path::OperationBuilder;
//! use utoipa::Modify;
//!
//! let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
//!     .scope("me", "Read information about the current user.")
//!     .public_path("/openapi.json")
//!     .build();
//!
//! // Your document, from `#[derive(OpenApi)]` or built by hand.
//! let mut openapi = OpenApiBuilder::new()
//!     .paths(PathsBuilder::new().path(
//!         "/users/me",
//!         PathItem::new(HttpMethod::Get, OperationBuilder::new().operation_id(Some("me"))),
//!     ))
//!     .build();
//! PasswordFlowDocs::new(&layer).modify(&mut openapi);
//!
//! let json = serde_json::to_value(&openapi).unwrap();
//! let flow = &json["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"];
//! assert_eq!(flow["tokenUrl"], "/token");
//! assert_eq!(flow["scopes"]["me"], "Read information about the current user.");
//! // The token endpoint is documented, and guarded operations say so.
//! assert!(json["paths"]["/token"]["post"].is_object());
//! assert_eq!(json["paths"]["/users/me"]["get"]["security"][0]["OAuth2PasswordBearer"], serde_json::json!([]));
//! assert!(json["paths"]["/users/me"]["get"]["responses"]["401"].is_object());
//! ```
//!
//! # What it writes
//!
//! - the security scheme [`SCHEME_NAME`] (`OAuth2PasswordBearer`, as FastAPI calls
//!   it): the password flow, its `tokenUrl`, and the scopes the layer declares with
//!   their descriptions;
//! - the token endpoint, `POST {token_url}`: its form, its answer, its errors;
//! - on every documented operation the layer guards (all but the token URL and the
//!   public paths), unless the operation already says otherwise: the security
//!   requirement, with the scopes the layer's rules
//!   ([`Builder::require_scopes`](crate::layer::Builder::require_scopes)) demand of it, and
//!   the layer's error answers (401, 400, 403 when scopes apply, 503).
//!
//! Scopes checked inside the router ([`RequireScopesLayer`](crate::guard::RequireScopesLayer),
//! [`Scopes::require_all`](crate::scope::Scopes::require_all)) are invisible to the layer:
//! name them on the operation, and they are kept:
//! `#[utoipa::path(get, path = "/users/me/items", security(("OAuth2PasswordBearer" = ["items"])))]`.
//! An operation documented with `security(())` (none) is left alone.
//!
//! # Behind a path prefix
//!
//! When a proxy serves the app under a prefix and strips it (the app sees
//! `/token`, browsers ask for `/api/token`), say so with
//! [`PasswordFlowDocs::path_prefix`]: the `tokenUrl` gets the prefix, and so does the
//! document's `servers` (unless it has its own), so that "Authorize" and
//! "Try it out" both reach the app through the proxy.
//!
//! [utoipa]: https://docs.rs/utoipa/5

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::{Method, Request, StatusCode};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, OperationBuilder, PathItem};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{
    Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes as FlowScopes, SecurityRequirement,
    SecurityScheme,
};
use utoipa::openapi::{Components, OpenApi, Ref, RefOr, Required, Schema, Server};
use utoipa::Modify;

use crate::config::Config;
use crate::endpoint::form::{MAX_PASSWORD_LEN, MAX_SCOPES, MAX_SCOPE_LEN, MAX_USERNAME_LEN};
use crate::guard::paths::spellings;
use crate::layer::OAuth2PasswordLayer;
use crate::scope::ScopeRequirement;
use crate::token::grant::MAX_TOKEN_LEN;

/// The name of the security scheme [`PasswordFlowDocs`] adds (unless
/// [`PasswordFlowDocs::scheme_name`] changes it): FastAPI's, so that clients and
/// docs written for FastAPI apps read the same.
pub const SCHEME_NAME: &str = "OAuth2PasswordBearer";

/// Schema names this module adds to `components.schemas` (if the document has none
/// of that name).
const TOKEN_REQUEST: &str = "OAuth2PasswordRequestForm";
const TOKEN_RESPONSE: &str = "OAuth2Token";
const ERROR: &str = "OAuth2Error";
const REVOCATION_REQUEST: &str = "OAuth2RevocationForm";
/// The HTTP Basic scheme of the introspection endpoint's clients (resource servers).
const INTROSPECTION_SCHEME: &str = "OAuth2IntrospectionClient";

/// A utoipa [`Modify`] that documents an [`OAuth2PasswordLayer`] in an OpenAPI
/// document: its security scheme, its token endpoint, and which operations it
/// guards with which scopes. See the [module documentation](self).
///
/// It copies what it needs from the layer when made: make it after the layer is
/// configured.
#[derive(Debug, Clone)]
pub struct PasswordFlowDocs {
    config: Config,
    scheme_name: Cow<'static, str>,
    /// `""`, or a prefix like `/api` (leading `/`, no trailing one).
    path_prefix: String,
    /// Whether the token endpoint also takes `grant_type=refresh_token` (the
    /// flow's `refreshUrl` is then the token URL).
    refresh_tokens: bool,
}

impl PasswordFlowDocs {
    /// The documentation of `layer`'s configuration: token URL, scopes, public paths
    /// and scope rules.
    pub fn new<Us, Ts>(layer: &OAuth2PasswordLayer<Us, Ts>) -> Self {
        Self {
            config: layer.config().clone(),
            scheme_name: Cow::Borrowed(SCHEME_NAME),
            path_prefix: String::new(),
            refresh_tokens: layer.issues_refresh_tokens(),
        }
    }

    /// Names the security scheme `name` instead of [`SCHEME_NAME`] (for documents
    /// that have a scheme of that name already).
    pub fn scheme_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.scheme_name = name.into();
        self
    }

    /// The app is served under `prefix` by a proxy that strips it (`/api`): the
    /// `tokenUrl` gets the prefix, and the document's
    /// `servers` becomes `[{"url": prefix}]` unless it lists servers already (list
    /// them with the prefix then). Paths in the document stay as the app sees them.
    ///
    /// A missing leading `/` is added and a trailing one dropped; `""` and `"/"`
    /// mean no prefix.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        self.path_prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_owned()
        } else {
            format!("/{prefix}")
        };
        self
    }

    /// The token URL as browsers reach it: the path prefix, then the layer's
    /// token URL (what the security scheme's `tokenUrl` says).
    pub fn token_url(&self) -> String {
        format!("{}{}", self.path_prefix, self.config.token_url)
    }

    fn security_scheme(&self) -> SecurityScheme {
        let scopes: FlowScopes = self
            .config
            .scopes
            .iter()
            .map(|(name, description)| (&**name, &**description))
            .collect();
        let token_url = self.token_url();
        let flow = if self.refresh_tokens {
            Password::with_refresh_url(token_url.clone(), scopes, token_url)
        } else {
            Password::new(token_url, scopes)
        };
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::Password(flow)],
            "Log in with a username and password at the token URL (OAuth2 password \
             grant), then send the access token as `Authorization: Bearer <token>`. \
             A client id and secret, in the form or as HTTP Basic, are accepted and \
             not checked: this server serves first-party clients.",
        ))
    }

    /// Whether requests for `method` `path` skip the guard: the token URL's, and the
    /// public paths. A path template (`/items/{id}`) matches public prefixes only.
    fn is_public(&self, method: &Method, path: &str) -> bool {
        let public = &self.config.public;
        let endpoint = path == &*self.config.token_url
            || self.config.revocation_url.as_deref() == Some(path)
            || self.config.served_introspection_url() == Some(path)
            || self.published().any(|(url, _)| url == path);
        if endpoint || public.matches_path(path) {
            return true;
        }
        public.has_predicate()
            && Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .is_ok_and(|request| public.matches_predicate(&request.into_parts().0))
    }

    /// The scope sets that would each satisfy the layer's rules for `method` `path`
    /// (OpenAPI lists alternatives; each one's scopes are all needed): one set
    /// holding every scope of the "all" rules, times one scope of each "any" rule.
    fn required_scopes(&self, method: &Method, path: &str) -> Vec<Vec<String>> {
        let path = spellings(path);
        let mut alternatives: Vec<Vec<String>> = vec![Vec::new()];
        for rule in &self.config.scope_rules {
            if !rule.applies_to(method, &path) {
                continue;
            }
            let requirement = &rule.requirement;
            let scopes = requirement.scopes();
            // `ScopeRequirement` does not say which kind it is; it compares equal to
            // the `any` of its scopes exactly when it is one.
            if scopes.len() > 1 && *requirement == ScopeRequirement::any(scopes.iter()) {
                alternatives = alternatives
                    .iter()
                    .flat_map(|alternative| scopes.iter().map(|scope| with(alternative, scope)))
                    .collect();
            } else {
                for alternative in &mut alternatives {
                    for scope in scopes.iter() {
                        *alternative = with(alternative, scope);
                    }
                }
            }
        }
        alternatives
    }

    /// Marks a guarded operation and adds the guard's answers to it.
    fn document_guarded(&self, method: &Method, path: &str, operation: &mut Operation) {
        let needs_scopes = match &operation.security {
            Some(security) => match scopes_named(security, &self.scheme_name) {
                // Documented as not ours (public, or another scheme): leave it.
                None => return,
                Some(any) => any,
            },
            None => {
                if self.is_public(method, path) {
                    return;
                }
                let alternatives = self.required_scopes(method, path);
                let needs_scopes = alternatives.iter().any(|scopes| !scopes.is_empty());
                operation.security = Some(
                    alternatives
                        .into_iter()
                        .map(|scopes| SecurityRequirement::new(&*self.scheme_name, scopes))
                        .collect(),
                );
                needs_scopes
            }
        };
        let messages = &self.config.messages;
        let mut answers = vec![
            (
                StatusCode::UNAUTHORIZED,
                "Not authenticated (no bearer token), or the token is invalid, expired or revoked",
            ),
            (
                StatusCode::BAD_REQUEST,
                "Malformed credentials: several Authorization headers, or a token in the URL",
            ),
            (messages.inactive_user_status, "Inactive user"),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The user or token store is unavailable; try again later",
            ),
        ];
        if needs_scopes {
            answers.push((
                messages.insufficient_scope_status,
                "Not enough permissions: the token lacks a scope this operation needs",
            ));
        }
        add_answers(operation, answers);
    }

    /// `POST {token_url}`, unless the document has it already.
    fn token_operation(&self) -> Operation {
        let form = RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/x-www-form-urlencoded",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(TOKEN_REQUEST)))
                    .build(),
            )
            .content(
                "multipart/form-data",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(TOKEN_REQUEST)))
                    .build(),
            )
            .build();
        let no_store = HeaderBuilder::new()
            .schema(string())
            .description(Some("`no-store`: tokens are never cached"))
            .build();
        let token = ResponseBuilder::new()
            .description("The access token")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(TOKEN_RESPONSE)))
                    .build(),
            )
            .header("Cache-Control", no_store)
            .build();
        let mut operation = OperationBuilder::new()
            .operation_id(Some("login"))
            .summary(Some("Log in: a username and password for an access token"))
            .description(Some(
                "The OAuth2 password grant (RFC 6749 §4.3). An unknown user and a wrong \
                 password get the same answer.",
            ))
            .request_body(Some(form))
            .response("200", token)
            .security(SecurityRequirement::default())
            .build();
        #[cfg(feature = "dpop")]
        if let Some(dpop) = &self.config.dpop {
            use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
            let required = dpop.mode == crate::dpop::settings::DpopMode::Required;
            let proof = ParameterBuilder::new()
                .name("DPoP")
                .parameter_in(ParameterIn::Header)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(format!(
                    "A DPoP proof (RFC 9449) of this request (`htm` `POST`, `htu` the token \
                     URL), signed with {}: the access token (and a login's refresh tokens) \
                     are bound to its key, and the answer's `token_type` is `DPoP`. A \
                     refresh token bound to a key needs a proof by that key. A refused \
                     proof is 400 `invalid_dpop_proof` (`use_dpop_nonce`, with a \
                     `DPoP-Nonce` header, when the server asks for its nonce).",
                    dpop.algs().replace(' ', " or ")
                )))
                .schema(Some(string()))
                .build();
            operation
                .parameters
                .get_or_insert_with(Vec::new)
                .push(proof);
        }
        add_answers(
            &mut operation,
            [
                (
                    StatusCode::BAD_REQUEST,
                    "Incorrect username or password (`invalid_grant`), a missing or malformed \
                     field (`invalid_request`), an unknown scope (`invalid_scope`), or a \
                     `grant_type` other than `password` (`unsupported_grant_type`)",
                ),
                (
                    StatusCode::REQUEST_TIMEOUT,
                    "The body did not arrive in time",
                ),
                (StatusCode::PAYLOAD_TOO_LARGE, "The body is over the limit"),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "The body is not a form"),
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many login attempts; see `Retry-After`",
                ),
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The user or token store is unavailable, or too many logins are waiting; \
                     see `Retry-After`",
                ),
            ],
        );
        operation
    }

    /// The documents the layer serves to `GET`: (path, operation).
    fn published(&self) -> impl Iterator<Item = (&str, Operation)> {
        let config = &self.config;
        let metadata = config
            .metadata
            .as_ref()
            .and(config.metadata_url.as_deref())
            .map(|url| {
                let operation = published_operation(
                    "authorizationServerMetadata",
                    "Authorization server metadata (RFC 8414)",
                    "The issuer, the token and revocation endpoints, the grant types, \
                     scopes and client authentication methods, and the `jwks_uri` when \
                     a key set is served. Cacheable for an hour.",
                );
                (url, operation)
            });
        let jwks = config.jwks.as_ref().map(|_| {
            let operation = published_operation(
                "jwks",
                "The public keys of the JWT access tokens (RFC 7517)",
                "A JSON Web Key Set of the Ed25519 keys (RFC 8037) the access tokens are \
                 signed and verified with, by `kid`; never a secret. Cacheable for five \
                 minutes.",
            );
            (&*config.jwks_url, operation)
        });
        metadata.into_iter().chain(jwks)
    }

    /// `POST {revocation_url}` (RFC 7009), when the layer serves it.
    fn revoke_operation(&self) -> Operation {
        let form = token_form();
        let mut operation = OperationBuilder::new()
            .operation_id(Some("revoke"))
            .summary(Some("Log out: revoke a token"))
            .description(Some(
                "RFC 7009 token revocation. An unknown or already revoked token is \
                 answered as revoked.",
            ))
            .request_body(Some(form))
            .response("200", ResponseBuilder::new().description("Revoked").build())
            .security(SecurityRequirement::default())
            .build();
        add_answers(
            &mut operation,
            [
                (StatusCode::BAD_REQUEST, "A missing or malformed field"),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "The body is not a form"),
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The token store is unavailable; try again later",
                ),
            ],
        );
        operation
    }

    /// `POST {introspection_url}` (RFC 7662), when the layer serves it.
    fn introspect_operation(&self) -> Operation {
        let form = token_form();
        let number = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .description(Some(description))
        };
        let answer = ObjectBuilder::new()
            .property("active", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("active")
            .property(
                "scope",
                text("The granted scopes, space-separated; absent when none.".to_owned()),
            )
            .property("username", text("The user the token names.".to_owned()))
            .property("sub", text("The same: the user's canonical name.".to_owned()))
            .property("exp", number("Expiry, in seconds since the Unix epoch."))
            .property(
                "iat",
                number("Issue time, in seconds since the Unix epoch: the expiry less the token lifetime."),
            )
            .property(
                "token_type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["Bearer", "DPoP"])),
            );
        let answered = ResponseBuilder::new()
            .description(
                "`active: true` and the token's fields for a live access token of an \
                 active user; exactly `{\"active\":false}` for anything else (expired, \
                 revoked, unknown, a refresh token, a disabled user's token)",
            )
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(answer)).build(),
            )
            .build();
        let mut operation = OperationBuilder::new()
            .operation_id(Some("introspect"))
            .summary(Some("Token introspection, for resource servers"))
            .description(Some(
                "RFC 7662. The caller authenticates as one of the layer's introspection \
                 clients with HTTP Basic (client id and secret).",
            ))
            .request_body(Some(form))
            .response("200", answered)
            .security(SecurityRequirement::new(
                INTROSPECTION_SCHEME,
                Vec::<String>::new(),
            ))
            .build();
        add_answers(
            &mut operation,
            [
                (
                    StatusCode::UNAUTHORIZED,
                    "Not one of the introspection clients (`invalid_client`)",
                ),
                (StatusCode::BAD_REQUEST, "A missing or malformed field"),
                (StatusCode::PAYLOAD_TOO_LARGE, "The body is over the limit"),
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "The body is not a form"),
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The user or token store is unavailable; try again later",
                ),
            ],
        );
        if let Some(RefOr::T(refused)) = operation.responses.responses.get_mut("401") {
            if let Some(challenge) = refused.headers.get_mut("WWW-Authenticate") {
                challenge.description = Some("The Basic challenge (RFC 7617)".to_owned());
            }
        }
        operation
    }

    fn token_request_schema(&self) -> Schema {
        let scopes = if self.config.scopes.is_empty() {
            "none are granted by this server".to_owned()
        } else {
            let names: Vec<&str> = self.config.scopes.iter().map(|(n, _)| &**n).collect();
            format!("declared: {}", names.join(", "))
        };
        let mut form = ObjectBuilder::new()
            .property(
                "grant_type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["password"]))
                    .description(Some(if self.config.require_grant_type {
                        "Must be `password`."
                    } else {
                        "`password`, or absent."
                    })),
            )
            .property(
                "username",
                text(format!("At most {MAX_USERNAME_LEN} bytes of UTF-8.")).min_length(Some(1)),
            )
            .required("username")
            .property(
                "password",
                text(format!("At most {MAX_PASSWORD_LEN} bytes of UTF-8."))
                    .min_length(Some(1))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password))),
            )
            .required("password")
            .property(
                "scope",
                text(format!(
                    "Space-separated scopes ({scopes}); at most {MAX_SCOPES}, each at \
                     most {MAX_SCOPE_LEN} bytes."
                )),
            )
            .property(
                "client_id",
                text("Accepted and not checked (first-party clients).".to_owned()),
            )
            .property(
                "client_secret",
                text("Accepted and not checked (first-party clients).".to_owned())
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password))),
            );
        if self.config.require_grant_type {
            form = form.required("grant_type");
        }
        form.into()
    }

    fn schemas(&self) -> [(&'static str, Schema); 4] {
        let token = ObjectBuilder::new()
            .property("access_token", string())
            .required("access_token")
            .property(
                "token_type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["bearer", "DPoP"])),
            )
            .required("token_type")
            .property(
                "expires_in",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some("Seconds until the access token expires.")),
            )
            .required("expires_in")
            .property(
                "refresh_token",
                text("Present when the server issues refresh tokens.".to_owned()),
            )
            .property(
                "scope",
                text("The granted scopes, when they differ from the requested ones.".to_owned()),
            );
        let error = ObjectBuilder::new()
            .property("detail", text("For people.".to_owned()))
            .required("detail")
            .property(
                "error",
                text("The RFC 6749 / RFC 6750 error code, where one applies.".to_owned()),
            );
        let revocation = ObjectBuilder::new()
            .property(
                "token",
                text(format!(
                    "The token to revoke or introspect; at most {MAX_TOKEN_LEN} bytes."
                ))
                .min_length(Some(1)),
            )
            .required("token")
            .property(
                "token_type_hint",
                // Not an enum: unknown hints are ignored, as RFC 7009 §2.1 allows.
                text(
                    "`access_token` or `refresh_token`: where to look first; other \
                      values are ignored."
                        .to_owned(),
                ),
            );
        [
            (TOKEN_REQUEST, self.token_request_schema()),
            (TOKEN_RESPONSE, token.into()),
            (ERROR, error.into()),
            (REVOCATION_REQUEST, revocation.into()),
        ]
    }
}

impl Modify for PasswordFlowDocs {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Components::new);
        components
            .security_schemes
            .insert(self.scheme_name.to_string(), self.security_scheme());
        for (name, schema) in self.schemas() {
            if name == REVOCATION_REQUEST
                && self.config.revocation_url.is_none()
                && self.config.served_introspection_url().is_none()
            {
                continue;
            }
            components
                .schemas
                .entry(name.to_owned())
                .or_insert(RefOr::T(schema));
        }

        for (path, item) in &mut openapi.paths.paths {
            for (method, operation) in operations(item) {
                self.document_guarded(&method, path, operation);
            }
        }
        let paths = &mut openapi.paths.paths;
        let token = paths.entry(self.config.token_url.to_string()).or_default();
        if token.post.is_none() {
            token.post = Some(self.token_operation());
        }
        if let Some(revoke_path) = &self.config.revocation_url {
            let revoke = paths.entry(revoke_path.to_string()).or_default();
            if revoke.post.is_none() {
                revoke.post = Some(self.revoke_operation());
            }
        }

        for (url, operation) in self.published() {
            let item = paths.entry(url.to_owned()).or_default();
            if item.get.is_none() {
                item.get = Some(operation);
            }
        }

        if let Some(introspect_path) = self.config.served_introspection_url() {
            let introspect = paths.entry(introspect_path.to_owned()).or_default();
            if introspect.post.is_none() {
                introspect.post = Some(self.introspect_operation());
            }
            components.security_schemes.insert(
                INTROSPECTION_SCHEME.to_owned(),
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
            );
        }

        if !self.path_prefix.is_empty() && openapi.servers.is_none() {
            openapi.servers = Some(vec![Server::new(&self.path_prefix)]);
        }
    }
}

/// A public `GET` of a JSON document the layer serves.
fn published_operation(id: &str, summary: &str, description: &str) -> Operation {
    let json = ContentBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
        .build();
    let mut operation = OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .response(
            "200",
            ResponseBuilder::new()
                .description(summary)
                .content("application/json", json)
                .build(),
        )
        .security(SecurityRequirement::default())
        .build();
    add_answers(
        &mut operation,
        [(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD")],
    );
    operation
}

/// The operations of a path item, with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation.as_mut()?)))
}

/// `Some(whether it names scopes)` if an operation's security names `scheme`.
fn scopes_named(security: &[SecurityRequirement], scheme: &str) -> Option<bool> {
    let mut named = None;
    for requirement in security {
        // Its fields are private; its JSON form is `{scheme: [scopes]}`.
        if let Ok(serde_json::Value::Object(schemes)) = serde_json::to_value(requirement) {
            if let Some(scopes) = schemes.get(scheme) {
                let has_scopes = scopes.as_array().is_some_and(|s| !s.is_empty());
                named = Some(named.unwrap_or(false) || has_scopes);
            }
        }
    }
    named
}

/// The layer's JSON error answers, one per status (descriptions of answers that
/// share a status joined), added where the operation documents none of its own.
fn add_answers(
    operation: &mut Operation,
    answers: impl IntoIterator<Item = (StatusCode, &'static str)>,
) {
    let mut by_status: BTreeMap<StatusCode, Vec<&str>> = BTreeMap::new();
    for (status, description) in answers {
        by_status.entry(status).or_default().push(description);
    }
    for (status, descriptions) in by_status {
        let mut response = ResponseBuilder::new()
            .description(descriptions.join("; "))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ERROR)))
                    .build(),
            );
        if status == StatusCode::UNAUTHORIZED {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(string())
                    .description(Some("The Bearer challenge (RFC 6750 §3)"))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .entry(status.as_str().to_owned())
            .or_insert_with(|| RefOr::T(response.build()));
    }
}

/// `alternative` with `scope` added, if it lacks it.
fn with(alternative: &[String], scope: &str) -> Vec<String> {
    let mut scopes = alternative.to_vec();
    if !scopes.iter().any(|known| known == scope) {
        scopes.push(scope.to_owned());
    }
    scopes
}

/// The request body of the revocation and introspection URLs: a form with `token`.
fn token_form() -> RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/x-www-form-urlencoded",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(REVOCATION_REQUEST)))
                .build(),
        )
        .build()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn text(description: String) -> ObjectBuilder {
    string().description(Some(description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::memory::MemoryUserStore;
    use serde_json::{json, Value};
    use utoipa::openapi::path::{HttpMethod, PathsBuilder};
    use utoipa::openapi::OpenApiBuilder;

    fn builder() -> crate::layer::Builder<MemoryUserStore<String>> {
        OAuth2PasswordLayer::builder(MemoryUserStore::new())
    }

    /// A document with a `GET` for each path, modified by `docs`.
    fn document(docs: &PasswordFlowDocs, paths: &[&str]) -> Value {
        let mut builder = PathsBuilder::new();
        for path in paths {
            builder = builder.path(
                *path,
                PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
            );
        }
        let mut openapi = OpenApiBuilder::new().paths(builder).build();
        docs.modify(&mut openapi);
        serde_json::to_value(&openapi).unwrap()
    }

    fn security(json: &Value, path: &str) -> Value {
        json["paths"][path]["get"]["security"].clone()
    }

    #[test]
    fn the_published_documents_are_public_gets() {
        let layer = builder()
            .issuer("https://auth.example.com")
            .jwks(crate::endpoint::jwks::Jwks::new())
            .build();
        let docs = PasswordFlowDocs::new(&layer);
        let json = document(&docs, &["/users/me"]);
        for (path, id) in [
            (
                "/.well-known/oauth-authorization-server",
                "authorizationServerMetadata",
            ),
            ("/.well-known/jwks.json", "jwks"),
        ] {
            let get = &json["paths"][path]["get"];
            assert_eq!(get["operationId"], id, "{json}");
            assert_eq!(get["security"], json!([{}]), "{path}: public");
            assert!(get["responses"]["200"]["content"]["application/json"].is_object());
        }
        // Without an issuer there is no metadata, nor its operation.
        let docs = PasswordFlowDocs::new(&builder().build());
        let json = document(&docs, &[]);
        assert!(json["paths"]
            .get("/.well-known/oauth-authorization-server")
            .is_none());
    }

    #[test]
    fn scope_rules_become_requirements_all_and_any() {
        let layer = builder()
            .scope("me", "Me.")
            .require_scopes("/admin/*", ScopeRequirement::all(["admin"]))
            .require_scopes_on(
                Method::GET,
                "/admin/users",
                ScopeRequirement::any(["users:read", "users:write"]),
            )
            .require_scopes_on(Method::POST, "/me", ScopeRequirement::all(["write"]))
            .build();
        let json = document(
            &PasswordFlowDocs::new(&layer),
            &["/me", "/admin/users", "/admin/{id}"],
        );
        assert_eq!(security(&json, "/me"), json!([{ SCHEME_NAME: [] }]));
        assert_eq!(
            security(&json, "/admin/users"),
            json!([
                { SCHEME_NAME: ["admin", "users:read"] },
                { SCHEME_NAME: ["admin", "users:write"] },
            ])
        );
        assert_eq!(
            security(&json, "/admin/{id}"),
            json!([{ SCHEME_NAME: ["admin"] }])
        );
        // The scopes the rules name are declared, without a description.
        let scopes =
            &json["components"]["securitySchemes"][SCHEME_NAME]["flows"]["password"]["scopes"];
        assert_eq!(
            scopes,
            &json!({"me": "Me.", "admin": "", "users:read": "", "users:write": "", "write": ""})
        );
        // 403 only where scopes apply.
        assert!(json["paths"]["/admin/users"]["get"]["responses"]["403"].is_object());
        assert!(json["paths"]["/me"]["get"]["responses"]["403"].is_null());
    }

    #[test]
    fn public_paths_prefixes_and_predicates_stay_unmarked() {
        let layer = builder()
            .public_path("/health")
            .public_prefix("/docs")
            .public_if(|parts| parts.uri.path().starts_with("/assets/"))
            .build();
        let json = document(
            &PasswordFlowDocs::new(&layer),
            &["/health", "/docs/{file}", "/assets/logo.png", "/private"],
        );
        for public in ["/health", "/docs/{file}", "/assets/logo.png"] {
            assert!(security(&json, public).is_null(), "{public}");
            assert!(json["paths"][public]["get"]["responses"]["401"].is_null());
        }
        assert_eq!(security(&json, "/private"), json!([{ SCHEME_NAME: [] }]));
    }

    #[test]
    fn explicit_security_is_kept_and_public_operations_left_alone() {
        let layer = builder().scope("items", "Items.").build();
        let mut openapi = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path(
                        "/items",
                        PathItem::new(
                            HttpMethod::Get,
                            OperationBuilder::new()
                                .security(SecurityRequirement::new(SCHEME_NAME, ["items"]))
                                .response("400", ResponseBuilder::new().description("Mine")),
                        ),
                    )
                    .path(
                        "/open",
                        PathItem::new(
                            HttpMethod::Get,
                            OperationBuilder::new().security(SecurityRequirement::default()),
                        ),
                    ),
            )
            .build();
        PasswordFlowDocs::new(&layer).modify(&mut openapi);
        let json = serde_json::to_value(&openapi).unwrap();
        let items = &json["paths"]["/items"]["get"];
        assert_eq!(items["security"], json!([{ SCHEME_NAME: ["items"] }]));
        assert_eq!(items["responses"]["400"]["description"], "Mine");
        assert!(items["responses"]["403"].is_object());
        let open = &json["paths"]["/open"]["get"];
        assert_eq!(open["security"], json!([{}]));
        assert!(open["responses"]["401"].is_null());
    }

    #[test]
    fn custom_statuses_share_a_response() {
        let layer = builder()
            .require_scopes("/x", ScopeRequirement::all(["x"]))
            .insufficient_scope_status(StatusCode::UNAUTHORIZED)
            .inactive_user_status(StatusCode::FORBIDDEN)
            .build();
        let json = document(&PasswordFlowDocs::new(&layer), &["/x"]);
        let responses = &json["paths"]["/x"]["get"]["responses"];
        let unauthorized = responses["401"]["description"].as_str().unwrap();
        assert!(
            unauthorized.contains("Not enough permissions"),
            "{unauthorized}"
        );
        assert_eq!(responses["403"]["description"], "Inactive user");
        assert!(responses["400"]["description"]
            .as_str()
            .unwrap()
            .starts_with("Malformed credentials"));
    }

    #[test]
    fn token_endpoint_prefix_and_strict_form() {
        let layer = builder()
            .token_url("/auth/token")
            .require_grant_type(true)
            .without_revocation_url()
            .build();
        assert_eq!(layer.token_url(), "/auth/token");
        let json = document(&PasswordFlowDocs::new(&layer).path_prefix("api/"), &[]);
        let flow = &json["components"]["securitySchemes"][SCHEME_NAME]["flows"]["password"];
        assert_eq!(flow["tokenUrl"], "/api/auth/token");
        assert!(flow.get("refreshUrl").is_none());
        assert_eq!(json["servers"], json!([{ "url": "/api" }]));
        let login = &json["paths"]["/auth/token"]["post"];
        assert_eq!(login["security"], json!([{}]));
        for status in ["200", "400", "408", "413", "415", "429", "503"] {
            assert!(login["responses"][status].is_object(), "{status}");
        }
        let form = &json["components"]["schemas"][TOKEN_REQUEST];
        assert_eq!(
            form["required"],
            json!(["username", "password", "grant_type"])
        );
        assert!(json["paths"]["/revoke"].is_null());
        assert!(json["components"]["schemas"][REVOCATION_REQUEST].is_null());
    }

    #[test]
    fn servers_of_the_document_are_kept() {
        let layer = builder().build();
        let mut openapi = OpenApiBuilder::new()
            .servers(Some([Server::new("https://example.com/api")]))
            .build();
        PasswordFlowDocs::new(&layer)
            .path_prefix("/api")
            .modify(&mut openapi);
        let json = serde_json::to_value(&openapi).unwrap();
        assert_eq!(
            json["servers"],
            json!([{ "url": "https://example.com/api" }])
        );
        for no_prefix in ["", "/"] {
            let docs = PasswordFlowDocs::new(&layer).path_prefix(no_prefix);
            assert_eq!(docs.token_url(), "/token");
            assert!(document(&docs, &[])["servers"].is_null());
        }
    }

    #[test]
    fn refresh_url_and_revocation_when_the_layer_has_them() {
        let layer = builder()
            .refresh_tokens(crate::token::memory::refresh::MemoryRefreshTokenStore::new())
            .build();
        let docs = PasswordFlowDocs::new(&layer).path_prefix("/api");
        let json = document(&docs, &[]);
        let flow = &json["components"]["securitySchemes"][SCHEME_NAME]["flows"]["password"];
        assert_eq!(flow["refreshUrl"], "/api/token");
        let revoke = &json["paths"]["/revoke"]["post"];
        assert_eq!(revoke["security"], json!([{}]));
        assert!(revoke["responses"]["200"].is_object());
        assert!(json["components"]["schemas"][REVOCATION_REQUEST].is_object());

        let layer = builder().without_revocation_url().build();
        let json = document(&PasswordFlowDocs::new(&layer), &[]);
        let flow = &json["components"]["securitySchemes"][SCHEME_NAME]["flows"]["password"];
        assert!(flow["refreshUrl"].is_null());
        assert!(json["paths"]["/revoke"].is_null());
    }

    #[test]
    fn introspection_when_the_layer_serves_it() {
        use crate::endpoint::clients::{ClientSecretHash, IntrospectionClients};
        let hash = ClientSecretHash::of("kQ3vY8xW0pL5nR2tZ7aB9cD4eF6gH1jK").unwrap();
        let layer = builder()
            .without_revocation_url()
            .introspection(IntrospectionClients::new().client("rs", hash))
            .build();
        // A guarded `GET` there too: the layer answers the path, never the guard.
        let json = document(&PasswordFlowDocs::new(&layer), &["/introspect"]);
        let scheme = &json["components"]["securitySchemes"][INTROSPECTION_SCHEME];
        assert_eq!(scheme["type"], "http");
        assert_eq!(scheme["scheme"], "basic");
        let post = &json["paths"]["/introspect"]["post"];
        assert_eq!(post["security"], json!([{ INTROSPECTION_SCHEME: [] }]));
        let answer = &post["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(answer["required"], json!(["active"]));
        assert!(answer["properties"]["exp"].is_object());
        let refused = &post["responses"]["401"];
        assert!(refused["headers"]["WWW-Authenticate"]["description"]
            .as_str()
            .unwrap()
            .contains("Basic"));
        assert!(json["components"]["schemas"][REVOCATION_REQUEST].is_object());
        assert!(security(&json, "/introspect").is_null());

        let json = document(&PasswordFlowDocs::new(&builder().build()), &[]);
        assert!(json["paths"]["/introspect"].is_null());
        assert!(json["components"]["securitySchemes"][INTROSPECTION_SCHEME].is_null());
    }

    #[test]
    fn scheme_name_is_configurable() {
        let layer = builder().build();
        let json = document(&PasswordFlowDocs::new(&layer).scheme_name("login"), &["/x"]);
        assert!(json["components"]["securitySchemes"]["login"].is_object());
        assert_eq!(security(&json, "/x"), json!([{ "login": [] }]));
    }
}
