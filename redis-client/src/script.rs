//! Lua scripts: [`Script`] runs EVALSHA and, when the server does not know
//! the script yet (NOSCRIPT), falls back to EVAL, which also caches it.

use crate::cmd::{cmd, ConnectionLike};
use crate::error::{Error, Result};
use crate::types::{FromValue, ToArg};

/// A Lua script and its SHA-1.
///
/// ```no_run
/// use greenhub_redis::Script;
/// greenhub::run(|| {
///     let mut redis = greenhub_redis::Client::open("redis://127.0.0.1:6379").unwrap();
///     let add = Script::new("return tonumber(ARGV[1]) + tonumber(ARGV[2])");
///     let sum: i64 = add.prepare().arg(2).arg(3).invoke(&mut redis).unwrap();
///     assert_eq!(sum, 5);
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    code: String,
    hash: String,
}

impl Script {
    /// A script from its Lua source.
    pub fn new(code: &str) -> Script {
        Script {
            code: code.to_owned(),
            hash: sha1_smol::Sha1::from(code).digest().to_string(),
        }
    }

    /// The SHA-1 the server knows the script by.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Starts an invocation, to add keys and arguments to.
    pub fn prepare(&self) -> Invocation<'_> {
        Invocation {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A script with its keys and arguments.
#[derive(Debug)]
pub struct Invocation<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[n]` in the script).
    pub fn key(&mut self, key: impl ToArg) -> &mut Self {
        let mut bytes = Vec::new();
        key.write_arg(&mut bytes);
        self.keys.push(bytes);
        self
    }

    /// Adds an argument (`ARGV[n]` in the script).
    pub fn arg(&mut self, arg: impl ToArg) -> &mut Self {
        let mut bytes = Vec::new();
        arg.write_arg(&mut bytes);
        self.args.push(bytes);
        self
    }

    /// Runs the script: EVALSHA, then EVAL if the server says NOSCRIPT.
    pub fn invoke<T: FromValue>(&self, con: &mut impl ConnectionLike) -> Result<T> {
        match self.eval("EVALSHA", &self.script.hash, con) {
            Err(Error::Server(err)) if err.code == "NOSCRIPT" => {
                self.eval("EVAL", &self.script.code, con)
            }
            other => other,
        }
    }

    fn eval<T: FromValue>(
        &self,
        command: &str,
        body: &str,
        con: &mut impl ConnectionLike,
    ) -> Result<T> {
        let mut eval = cmd(command);
        eval.arg(body)
            .arg(self.keys.len())
            .args(&self.keys)
            .args(&self.args);
        eval.query(con)
    }
}
