//! Frames the server sends on its own: RESP3 pushes (`>`), and on a RESP2
//! connection that subscribed, published messages. They never answer a
//! command: `connection.rs` hands each one here, and [`PushHandlers`] gives
//! it to the pub/sub handler (messages and subscription changes) or to the
//! tracking handler (`invalidate`: keys whose cached values are stale), as
//! set with [`Client::on_message`](crate::Client::on_message) and
//! [`Client::on_invalidate`](crate::Client::on_invalidate). A frame nobody
//! handles is logged (with its kind) and dropped, never returned as a reply.
//! See `docs/redis-client.md`, "RESP3 and pushes".

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use crate::pubsub::{message, Message};
use crate::resp::{dismantle, Value};

/// Keys whose values changed on the server, from an `invalidate` push:
/// `None` means every key (the server flushed its databases).
pub type Invalidated = Option<Vec<Vec<u8>>>;

type MessageHandler = Rc<dyn Fn(Message)>;
type InvalidateHandler = Rc<dyn Fn(Invalidated)>;

/// Where out-of-band frames go; shared by a pool and its connections.
#[derive(Default)]
pub(crate) struct PushHandlers {
    message: RefCell<Option<MessageHandler>>,
    invalidate: RefCell<Option<InvalidateHandler>>,
}

impl fmt::Debug for PushHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushHandlers")
            .field("message", &self.message.borrow().is_some())
            .field("invalidate", &self.invalidate.borrow().is_some())
            .finish()
    }
}

impl PushHandlers {
    /// A separate set holding the same handlers.
    pub(crate) fn copy(&self) -> PushHandlers {
        PushHandlers {
            message: RefCell::new(self.message.borrow().clone()),
            invalidate: RefCell::new(self.invalidate.borrow().clone()),
        }
    }

    pub(crate) fn set_message(&self, handler: impl Fn(Message) + 'static) {
        *self.message.borrow_mut() = Some(Rc::new(handler));
    }

    pub(crate) fn set_invalidate(&self, handler: impl Fn(Invalidated) + 'static) {
        *self.invalidate.borrow_mut() = Some(Rc::new(handler));
    }

    /// Hands one out-of-band frame to its handler. The handler is cloned out
    /// first, so it may itself set handlers or run commands.
    pub(crate) fn deliver(&self, frame: Value) {
        if let Some(keys) = invalidated(&frame) {
            let handler = self.invalidate.borrow().clone();
            match handler {
                Some(handler) => handler(keys),
                None => unhandled("invalidate", frame),
            }
            return;
        }
        let handler = self.message.borrow().clone();
        match (handler, message(frame.clone())) {
            (Some(handler), Ok(message)) => {
                dismantle(frame);
                handler(message)
            }
            (_, Ok(message)) => unhandled(&message.kind.clone(), frame),
            (_, Err(_)) => unhandled("unknown", frame),
        }
    }
}

fn unhandled(kind: &str, frame: Value) {
    log::warn!("an out-of-band {kind} frame arrived and no handler is set for it; dropped");
    dismantle(frame);
}

/// The keys of an invalidation: a RESP3 push `[invalidate, keys]`, or the
/// RESP2 form, a message on `__redis__:invalidate`. `None` if `frame` is
/// not one; `Some(None)` for "every key".
pub(crate) fn invalidated(frame: &Value) -> Option<Invalidated> {
    let keys = match frame {
        Value::Push(items) if word(items.first()) == Some(&b"invalidate"[..]) => items.get(1),
        Value::Push(items) | Value::Array(items)
            if word(items.first()) == Some(&b"message"[..])
                && word(items.get(1)) == Some(&b"__redis__:invalidate"[..]) =>
        {
            items.get(2)
        }
        _ => return None,
    };
    Some(match keys {
        Some(Value::Array(keys)) | Some(Value::Set(keys)) => Some(
            keys.iter()
                .filter_map(|key| word(Some(key)).map(<[u8]>::to_vec))
                .collect(),
        ),
        _ => None,
    })
}

fn word(value: Option<&Value>) -> Option<&[u8]> {
    match value? {
        Value::Bulk(bytes) => Some(bytes),
        Value::Status(text) => Some(text.as_bytes()),
        _ => None,
    }
}
