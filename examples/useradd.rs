//! The admin tool for `examples/server.rs`'s users, on the same `DATABASE_URL`
//! (default `sqlite://users.db`). Every change takes effect on the user's next
//! request to a running server.
//!
//! ```text
//! cargo run --features sqlx --example useradd -- add bob --full-name 'Bob Smith' --email bob@example.com --scope me
//! cargo run --features sqlx --example useradd -- passwd bob        # ends bob's sessions
//! cargo run --features sqlx --example useradd -- disable bob       # tokens answer "Inactive user"
//! cargo run --features sqlx --example useradd -- enable bob
//! cargo run --features sqlx --example useradd -- scopes bob me items   # ends bob's sessions
//! cargo run --features sqlx --example useradd -- remove bob        # ends bob's sessions
//! ```
//!
//! Passwords are read from standard input, one line, or asked for without echo on
//! a terminal: never from the command line, where other users and the shell
//! history would see them. Exit status 0 on success, 1 for an unknown user, a
//! taken name or a database error, 2 for a usage error; one line on stderr says
//! which.

use std::io::{BufRead, IsTerminal};
use std::process::exit;

use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::user::sql::{self, NewUser, UsersTable};
use tower_oauth2_password::{Argon2Hasher, PasswordHasher};

const USAGE: &str =
    "usage: useradd add <username> [--full-name NAME] [--email EMAIL] [--scope SCOPE]...
       useradd passwd|disable|enable|remove <username>
       useradd scopes <username> [SCOPE]...";

/// The login form's limits (a longer password could never log in).
const MAX_USERNAME_LEN: usize = 256;
const MAX_PASSWORD_LEN: usize = 1024;
const MAX_SCOPE_LEN: usize = 128;

/// A scope as RFC 6749 §3.3 spells one (printable ASCII but space, `"` and `\`),
/// of at most the login form's length.
fn check_scope(scope: &str) -> Result<&str, String> {
    let valid = !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
    if valid {
        Ok(scope)
    } else {
        Err(format!("not a scope: {scope:?}"))
    }
}

enum Command {
    Add(NewUserArgs),
    Passwd(String),
    Disable(String),
    Enable(String),
    Remove(String),
    Scopes(String, Scopes),
}

struct NewUserArgs {
    username: String,
    full_name: Option<String>,
    email: Option<String>,
    scopes: Vec<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let verb = args.next().ok_or("no command given")?;
    let username = args.next().ok_or("no username given")?;
    if username.is_empty() || username.len() > MAX_USERNAME_LEN {
        return Err(format!("a username has 1 to {MAX_USERNAME_LEN} bytes"));
    }
    let command = match verb.as_str() {
        "add" => {
            let mut user = NewUserArgs {
                username,
                full_name: None,
                email: None,
                scopes: Vec::new(),
            };
            while let Some(option) = args.next() {
                let value = args
                    .next()
                    .ok_or_else(|| format!("{option} needs a value"))?;
                match option.as_str() {
                    "--full-name" => user.full_name = Some(value),
                    "--email" => user.email = Some(value),
                    "--scope" => user.scopes.push(check_scope(&value)?.to_owned()),
                    _ => return Err(format!("unknown option {option}")),
                }
            }
            return Ok(Command::Add(user));
        }
        "scopes" => {
            let scopes: Vec<String> = args.collect();
            for scope in &scopes {
                check_scope(scope)?;
            }
            return Ok(Command::Scopes(username, scopes.iter().collect()));
        }
        "passwd" => Command::Passwd(username),
        "disable" => Command::Disable(username),
        "enable" => Command::Enable(username),
        "remove" => Command::Remove(username),
        _ => return Err(format!("unknown command {verb}")),
    };
    match args.next() {
        Some(extra) => Err(format!("unexpected argument {extra}")),
        None => Ok(command),
    }
}

/// The new password: a prompt without echo on a terminal, else one line of stdin.
fn read_password(username: &str) -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {username}: "))
            .map_err(|error| format!("cannot read the password: {error}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|error| format!("cannot read the password from stdin: {error}"))?;
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        line
    };
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(format!("a password has 1 to {MAX_PASSWORD_LEN} bytes"));
    }
    Ok(password)
}

fn hash_password(username: &str) -> Result<HashedPassword, String> {
    let password = read_password(username)?;
    Argon2Hasher::new()
        .hash(&password)
        .map_err(|error| error.to_string())
}

/// Runs the command; the error is the line for stderr.
async fn run(command: Command, table: &UsersTable) -> Result<String, String> {
    let (done, name, what) = match command {
        Command::Add(args) => {
            let mut user = NewUser::new(&args.username, hash_password(&args.username)?)
                .scopes(args.scopes.iter().collect());
            if let Some(full_name) = args.full_name {
                user = user.full_name(full_name);
            }
            if let Some(email) = args.email {
                user = user.email(email);
            }
            let added = table.add(&user).await;
            return match added {
                Ok(true) => Ok(format!("added {}", args.username)),
                Ok(false) => Err(format!("user {} already exists", args.username)),
                Err(error) => Err(format!("database error: {error}")),
            };
        }
        Command::Passwd(name) => {
            let hash = hash_password(&name)?;
            (
                table.set_password(&name, &hash).await,
                name,
                "password changed",
            )
        }
        Command::Disable(name) => (table.disable(&name).await, name, "disabled"),
        Command::Enable(name) => (table.enable(&name).await, name, "enabled"),
        Command::Remove(name) => (table.remove(&name).await, name, "removed"),
        Command::Scopes(name, scopes) => {
            (table.set_scopes(&name, &scopes).await, name, "scopes set")
        }
    };
    match done {
        Ok(true) => Ok(format!("{name}: {what}")),
        Ok(false) => Err(format!("no such user: {name}")),
        Err(error) => Err(format!("database error: {error}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let command = match parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("useradd: {error}\n{USAGE}");
            exit(2);
        }
    };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://users.db".to_owned());
    let table = match sql::connect(&url).await {
        Ok(pool) => UsersTable::new(pool),
        Err(error) => {
            eprintln!("useradd: cannot open DATABASE_URL: {error}");
            exit(1);
        }
    };
    // The server creates the table on its first start; so does this, without seeding.
    if let Err(error) = table.migrate().await {
        eprintln!("useradd: cannot create the users table: {error}");
        exit(1);
    }
    match run(command, &table).await {
        Ok(done) => println!("{done}"),
        Err(error) => {
            eprintln!("useradd: {error}");
            exit(1);
        }
    }
}
