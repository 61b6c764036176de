//! Where to connect and how: secrets from files and commands, verified TLS.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use service::connection::{self, DbTarget, PoolSettings, TargetError};
use std::collections::HashMap;
use std::time::Duration;
use tests::{Backend, Start, run_case};

fn target(vars: &[(&str, &str)]) -> Result<DbTarget, TargetError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    DbTarget::from_lookup(None, &move |name| map.get(name).cloned())
}

fn password_of(target: &DbTarget) -> Option<String> {
    url::Url::parse(target.connection_url())
        .ok()?
        .password()
        .map(str::to_owned)
}

#[test]
fn secrets_password_file_and_command_fill_in_the_password_and_never_print_it() {
    let file = std::env::temp_dir().join(format!("db-password-{}", std::process::id()));
    std::fs::write(&file, "from-the-file\n").expect("writes");
    let path = file.to_string_lossy().into_owned();
    let by_file = target(&[
        ("DB_HOST", "db.internal"),
        ("DB_NAME", "app"),
        ("DB_USERNAME", "app"),
        ("DB_PASSWORD_FILE", &path),
    ])
    .expect("resolves");
    assert_eq!(
        password_of(&by_file).as_deref(),
        Some("from-the-file"),
        "trailing newline dropped"
    );
    assert!(
        !by_file.to_string().contains("from-the-file")
            && !format!("{by_file:?}").contains("from-the-file")
    );
    let _ = std::fs::remove_file(&file);

    let by_command = target(&[
        ("DATABASE_URL", "postgres://app@db.internal/app"),
        ("DB_PASSWORD_COMMAND", "printf 's3cr#t/x'"),
    ])
    .expect("resolves");
    assert_eq!(
        password_of(&by_command)
            .as_deref()
            .map(|p| p.contains("s3cr")),
        Some(true)
    );
    assert!(!by_command.masked_url().contains("s3cr"));

    // A secret manager that fails may print the secret (or a token) on either stream.
    let failing = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        (
            "DB_PASSWORD_COMMAND",
            "echo leaked-secret; echo 'token expired: leaked-stderr-secret' >&2; exit 3",
        ),
    ]);
    match failing {
        Err(e @ TargetError::PasswordCommand(_)) => {
            let text = e.to_string();
            assert!(
                !text.contains("leaked-secret")
                    && !text.contains("leaked-stderr-secret")
                    && !text.contains("token expired"),
                "no output of the command is shown: {text}"
            );
            assert!(
                text.contains("exited with status 3") && text.contains("Run the command yourself"),
                "the status and a fixed hint: {text}"
            );
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    let missing = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        ("DB_PASSWORD_FILE", "/nonexistent/secret"),
    ]);
    assert!(
        matches!(missing, Err(TargetError::PasswordFile { .. })),
        "{missing:?}"
    );
    let both = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        ("DB_PASSWORD_FILE", "/x"),
        ("DB_PASSWORD_COMMAND", "true"),
    ]);
    assert!(
        matches!(both, Err(TargetError::ConflictingSecrets)),
        "{both:?}"
    );
}

#[test]
fn tls_settings_are_validated_and_map_to_verified_modes() {
    let pg = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        ("DB_SSL_ENABLED", "true"),
        ("DB_SSL_CA", "/etc/ca.pem"),
    ])
    .expect("resolves");
    assert!(pg.tls());
    assert!(
        pg.connection_url().contains("sslmode=verify-full")
            && pg.connection_url().contains("sslrootcert=%2Fetc%2Fca.pem")
    );
    let maria = target(&[
        ("DATABASE_URL", "mysql://app@db/app"),
        ("DB_SSL_ENABLED", "1"),
    ])
    .expect("resolves");
    assert!(maria.connection_url().contains("ssl-mode=VERIFY_IDENTITY"));
    let half = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        ("DB_SSL_CA", "/etc/ca.pem"),
    ]);
    assert!(
        matches!(half, Err(TargetError::TlsNotEnabled { var: "DB_SSL_CA" })),
        "{half:?}"
    );
    let bad = target(&[
        ("DATABASE_URL", "postgres://app@db/app"),
        ("DB_SSL_ENABLED", "maybe"),
    ]);
    assert!(
        matches!(bad, Err(TargetError::InvalidFlag { .. })),
        "{bad:?}"
    );
    assert!(
        !target(&[("DATABASE_URL", "postgres://app@db/app")])
            .expect("resolves")
            .tls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_postgres_connection_is_encrypted_and_the_certificate_verified() {
    run_case(
        Backend::Postgres,
        "tls_postgres",
        Start::Empty,
        |t| async move {
            let show = |sql: &str| {
                let db = t.db.clone();
                let sql = sql.to_owned();
                async move {
                    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                        .await
                        .expect("query")
                        .expect("row")
                        .try_get_by_index::<String>(0)
                        .expect("text")
                }
            };
            assert_eq!(
                show("SHOW ssl").await,
                "on",
                "the test server must have TLS on (.ci/run ensures it)"
            );
            let certificate = show("SHOW ssl_cert_file").await;
            // The local server's self-signed certificate names `localhost`; trusting it as
            // the CA is what verify-full against a private CA looks like.
            let url = t.url.replace("127.0.0.1", "localhost");
            let verified = target(&[
                ("DATABASE_URL", &url),
                ("DB_SSL_ENABLED", "true"),
                ("DB_SSL_CA", &certificate),
            ])
            .expect("resolves");
            let db = connection::connect(&verified, &tests::pool(1))
                .await
                .expect("connects over verified TLS");
            let row = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()".to_owned(),
                ))
                .await
                .expect("query")
                .expect("row");
            assert!(
                row.try_get_by_index::<bool>(0).expect("bool"),
                "pg_stat_ssl says TLS"
            );
            assert!(
                row.try_get_by_index::<String>(1)
                    .expect("version")
                    .starts_with("TLS")
            );
            db.close().await.ok();

            // Real CAs that did not sign the server's certificate (the system bundle):
            // refused, not silently trusted.
            let untrusted = target(&[
                ("DATABASE_URL", &url),
                ("DB_SSL_ENABLED", "true"),
                ("DB_SSL_CA", "/etc/ssl/certs/ca-certificates.crt"),
                ("DB_CONNECT_TIMEOUT", "2"),
            ])
            .expect("resolves");
            let refused = connection::connect(&untrusted, &tests::pool(1)).await;
            let reason = refused
                .err()
                .map(|e| e.to_string().to_lowercase())
                .unwrap_or_default();
            assert!(
                ["certificate", "tls", "ssl"]
                    .iter()
                    .any(|word| reason.contains(word)),
                "an unverifiable certificate must fail the connection, for that reason: {reason:?}"
            );
        },
    )
    .await;
}

#[test]
fn db_variables_build_an_encoded_url_and_mask_the_password() {
    let target = target(&[
        ("DB_BACKEND", "mariadb"),
        ("DB_HOST", "db.internal"),
        ("DB_PORT", "3307"),
        ("DB_USERNAME", "app"),
        ("DB_PASSWORD", "p@ss/w:rd#1"),
        ("DB_NAME", "app_prod"),
    ])
    .expect("resolves");
    assert_eq!(target.backend, DbBackend::MySql);
    assert_eq!(target.host(), "db.internal:3307");
    assert_eq!(target.database(), "app_prod");
    assert_eq!(target.user(), "app");
    assert_eq!(
        password_of(&target).as_deref(),
        Some("p%40ss%2Fw%3Ard%231"),
        "percent-encoded in the URL"
    );
    assert!(!target.masked_url().contains("p%40ss") && target.masked_url().contains("****"));
    let bad_port = self::target(&[("DB_HOST", "h"), ("DB_NAME", "d"), ("DB_PORT", "eighty")]);
    assert!(
        matches!(bad_port, Err(TargetError::InvalidPort(_))),
        "{bad_port:?}"
    );
    let bad_backend = self::target(&[("DB_HOST", "h"), ("DB_NAME", "d"), ("DB_BACKEND", "oracle")]);
    assert!(
        matches!(bad_backend, Err(TargetError::UnknownBackend(_))),
        "{bad_backend:?}"
    );
    let nothing = self::target(&[]);
    assert!(matches!(nothing, Err(TargetError::Missing)), "{nothing:?}");
    let scheme = self::target(&[("DATABASE_URL", "mongodb://x/y")]);
    assert!(
        matches!(scheme, Err(TargetError::UnsupportedScheme { .. })),
        "{scheme:?}"
    );
}

fn settings(vars: &[(&str, &str)]) -> Result<PoolSettings, TargetError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    PoolSettings::from_lookup(&move |name| map.get(name).cloned())
}

#[test]
fn pool_settings_come_from_the_environment_and_bad_values_are_explained() {
    let defaults = settings(&[]).expect("defaults");
    assert_eq!(defaults, PoolSettings::application());
    assert_eq!(defaults.max_connections, 10);
    assert_eq!(defaults.statement_timeout, Some(Duration::from_secs(30)));

    let set = settings(&[
        ("DB_POOL_MIN", "2"),
        ("DB_POOL_MAX", "7"),
        ("DB_ACQUIRE_TIMEOUT", "4"),
        ("DB_IDLE_TIMEOUT", "0"),
        ("DB_MAX_LIFETIME", "900"),
        ("DB_STATEMENT_TIMEOUT_MS", "0"),
        ("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "1500"),
        ("DB_APPLICATION_NAME", "billing-api"),
    ])
    .expect("resolves");
    assert_eq!((set.min_connections, set.max_connections), (2, 7));
    assert_eq!(set.acquire_timeout, Some(Duration::from_secs(4)));
    assert_eq!(set.idle_timeout, None, "0 turns it off");
    assert_eq!(set.max_lifetime, Some(Duration::from_secs(900)));
    assert_eq!(set.statement_timeout, None, "0 turns it off");
    assert_eq!(
        set.idle_in_transaction_timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(set.application_name.as_deref(), Some("billing-api"));

    let bad = settings(&[("DB_POOL_MAX", "ten")]);
    assert!(
        matches!(
            bad,
            Err(TargetError::InvalidNumber {
                var: "DB_POOL_MAX",
                ..
            })
        ),
        "{bad:?}"
    );
    let negative = settings(&[("DB_STATEMENT_TIMEOUT_MS", "-5")]);
    assert!(matches!(negative, Err(TargetError::InvalidNumber { .. })));
    let upside_down = settings(&[("DB_POOL_MIN", "5"), ("DB_POOL_MAX", "2")]);
    assert!(
        matches!(upside_down, Err(TargetError::PoolBounds { min: 5, max: 2 })),
        "{upside_down:?}"
    );
    let huge = settings(&[("DB_ACQUIRE_TIMEOUT", "18446744073709551615")]);
    assert!(
        matches!(
            huge,
            Err(TargetError::OutOfRange {
                var: "DB_ACQUIRE_TIMEOUT",
                ..
            })
        ),
        "{huge:?}"
    );
    let over_int = settings(&[("DB_STATEMENT_TIMEOUT_MS", "99999999999")]);
    assert!(
        matches!(
            over_int,
            Err(TargetError::OutOfRange {
                var: "DB_STATEMENT_TIMEOUT_MS",
                ..
            })
        ),
        "{over_int:?}"
    );
    let empty = settings(&[("DB_POOL_MAX", "0")]);
    assert!(matches!(empty, Err(TargetError::PoolBounds { .. })));

    // PgBouncer: the defaults it cannot carry are dropped; an explicit one is refused.
    let bouncer = settings(&[("DB_PGBOUNCER", "true")]).expect("resolves");
    assert!(bouncer.pgbouncer && bouncer.statement_timeout.is_none());
    let refused = settings(&[("DB_PGBOUNCER", "true"), ("DB_STATEMENT_TIMEOUT_MS", "100")]);
    assert!(
        matches!(
            refused,
            Err(TargetError::NotThroughPgBouncer {
                var: "DB_STATEMENT_TIMEOUT_MS"
            })
        ),
        "{refused:?}"
    );
    let schema = settings(&[("DB_PGBOUNCER", "yes"), ("DATABASE_SCHEMA", "app")]);
    assert!(matches!(
        schema,
        Err(TargetError::NotThroughPgBouncer { .. })
    ));
    let flag = settings(&[("DB_PGBOUNCER", "sometimes")]);
    assert!(matches!(flag, Err(TargetError::InvalidFlag { .. })));
}

async fn show<C: ConnectionTrait>(db: &C, sql: &str) -> String {
    db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .expect("runs")
        .expect("a row")
        .try_get_by_index::<String>(0)
        .expect("text")
}

#[tokio::test]
async fn pool_settings_are_what_the_runtime_role_sees() {
    run_case(
        Backend::Postgres,
        "pool_settings_runtime",
        Start::Migrated,
        |t| async move {
            let settings = settings(&[
                ("DB_POOL_MIN", "2"),
                ("DB_POOL_MAX", "3"),
                ("DB_ACQUIRE_TIMEOUT", "1"),
                ("DB_STATEMENT_TIMEOUT_MS", "250"),
                ("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "4321"),
                ("DB_APPLICATION_NAME", "pool-settings-test"),
            ])
            .expect("resolves");
            let db = connection::connect(&t.runtime_target(None), &settings)
                .await
                .expect("connects as the runtime login");
            assert_eq!(
                show(&db, "SELECT current_user::text").await,
                tests::RUNTIME_LOGIN
            );
            assert_eq!(
                show(
                    &db,
                    "SELECT pg_has_role(current_user, 'app_service', 'MEMBER')::text"
                )
                .await,
                "true"
            );
            assert_eq!(show(&db, "SHOW statement_timeout").await, "250ms");
            assert_eq!(
                show(&db, "SHOW idle_in_transaction_session_timeout").await,
                "4321ms"
            );
            assert_eq!(
                show(
                    &db,
                    "SELECT setting FROM pg_settings WHERE name = 'application_name'"
                )
                .await,
                "pool-settings-test"
            );
            assert_eq!(
                show(&db, "SELECT current_schemas(false)::text").await,
                "{public}"
            );
            // The timeout holds: a statement longer than it is cancelled.
            let slow = db
                .execute_unprepared("SELECT pg_sleep(2)")
                .await
                .expect_err("cancelled by statement_timeout");
            assert!(slow.to_string().contains("statement timeout"), "{slow}");

            // The pool's own size: the minimum is kept open, the maximum is a wall.
            let pool = db.get_postgres_connection_pool();
            for _ in 0..50 {
                if pool.size() >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                pool.size() >= 2,
                "DB_POOL_MIN keeps 2 open: {}",
                pool.size()
            );
            let held = futures::future::try_join_all((0..3).map(|_| db.begin()))
                .await
                .expect("three connections");
            assert_eq!(pool.size(), 3);
            let fourth = db.begin().await;
            assert!(
                fourth.is_err(),
                "DB_POOL_MAX=3: a fourth caller times out after DB_ACQUIRE_TIMEOUT"
            );
            for txn in held {
                txn.rollback().await.expect("rolls back");
            }
            db.close().await.ok();
        },
    )
    .await;
}

#[tokio::test]
async fn connection_every_database_socket_has_tcp_nodelay() {
    for backend in [Backend::Postgres, Backend::MySql] {
        run_case(backend, "tcp_nodelay", Start::Empty, |t| async move {
            let target = t.target();
            let (host, port) = target.tcp_endpoint().expect("a TCP target");
            let db = connection::connect(&target, &tests::pool(3))
                .await
                .expect("connects");
            let held = futures::future::try_join_all((0..3).map(|_| db.begin()))
                .await
                .expect("three connections");
            // This pool's sockets, by the client port the server sees: other tests of
            // this process may be connecting meanwhile (before their hook has run).
            let port_sql = match t.backend {
                Backend::MySql => {
                    "SELECT CAST(SUBSTRING_INDEX(host, ':', -1) AS SIGNED) FROM information_schema.processlist WHERE id = CONNECTION_ID()"
                }
                _ => "SELECT inet_client_port()::bigint",
            };
            let mut ours = Vec::new();
            for txn in &held {
                let port: i64 = txn
                    .query_one_raw(Statement::from_string(t.db_backend(), port_sql.to_owned()))
                    .await
                    .expect("reads the client port")
                    .expect("a row")
                    .try_get_by_index(0)
                    .expect("a port");
                ours.push(u16::try_from(port).expect("a port"));
            }
            let sockets: Vec<_> = connection::database_sockets(&host, port)
                .into_iter()
                .filter(|s| ours.contains(&s.local.port()))
                .collect();
            assert_eq!(sockets.len(), 3, "found the pool's sockets: {sockets:?} for {ours:?}");
            assert!(
                sockets.iter().all(|s| s.nodelay),
                "every socket of the pool has TCP_NODELAY: {sockets:?}"
            );
            // The check can fail: a socket without the option is seen as such. (On a port
            // of its own: a pool of another test connecting meanwhile sets the option on
            // every socket to the database server, a plain one included.)
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listens");
            let elsewhere = listener.local_addr().expect("bound").port();
            let plain = tokio::net::TcpStream::connect(("127.0.0.1", elsewhere))
                .await
                .expect("a plain socket");
            assert!(
                connection::database_sockets("127.0.0.1", elsewhere)
                    .iter()
                    .any(|s| !s.nodelay),
                "a socket without TCP_NODELAY is found"
            );
            drop(plain);
            for txn in held {
                txn.rollback().await.expect("rolls back");
            }
            db.close().await.ok();
        })
        .await;
    }
}
