//! A connection's first request head, read before hyper takes the connection over.
//!
//! hyper gives every connection a read buffer of 8 KiB before a byte arrives and 16 KiB once a
//! head starts trickling in, so a crowd of strangers' connections would hold memory in
//! proportion to their number. Here a head is read into a buffer that holds what arrived and no
//! more, and every head being read takes its bytes from one budget ([`Heads`]) shared by all
//! connections. When a new chunk does not fit, the heads that have been waiting longest are
//! dropped to make room (a delivery's head arrives in one segment; a slow-loris's never ends),
//! and only if that cannot make room is the request answered 503 with `Retry-After`. Once the
//! head is complete, hyper gets the connection with those bytes replayed ([`Prefixed`]).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The bytes of incomplete request heads across every connection of one server: 2,048 heads
/// at the 8 KiB limit. Strangers who trickle hold about half the limit on average, so the
/// default 4,096 connections fit; more connections than that, or bigger heads, and the oldest
/// heads are dropped first.
pub const HEAD_BUDGET: usize = 16 * 1024 * 1024;

/// The budget of incomplete heads, and who holds how much of it, oldest first.
pub(super) struct Heads {
    budget: usize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    held: usize,
    next: u64,
    by_age: BTreeMap<u64, Holder>,
}

struct Holder {
    bytes: usize,
    drop_it: Option<oneshot::Sender<()>>,
}

impl Heads {
    pub(super) fn new(budget: usize) -> Arc<Self> {
        Arc::new(Self {
            budget,
            book: Mutex::new(Book::default()),
        })
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new head being read; the receiver fires when it is dropped to make room.
    pub(super) fn start(self: &Arc<Self>) -> (Ticket, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let mut book = self.book();
        let id = book.next;
        book.next += 1;
        book.by_age.insert(
            id,
            Holder {
                bytes: 0,
                drop_it: Some(tx),
            },
        );
        (
            Ticket {
                heads: self.clone(),
                id,
            },
            rx,
        )
    }

    /// The bytes held now (tests).
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.book().held
    }
}

/// One head's share of the budget, given back when dropped.
pub(super) struct Ticket {
    heads: Arc<Heads>,
    id: u64,
}

impl Ticket {
    /// Takes `bytes` more for this head, dropping older heads while they are in the way;
    /// `false` when even that cannot make room.
    fn take(&self, bytes: usize) -> bool {
        let mut book = self.heads.book();
        while book.held + bytes > self.heads.budget {
            // Only older heads that hold something make room for this one (a connection that
            // has sent nothing yet costs nothing, and may be the next delivery).
            let Some((&oldest, _)) = book
                .by_age
                .range(..self.id)
                .find(|(_, holder)| holder.bytes > 0)
            else {
                break;
            };
            if let Some(mut holder) = book.by_age.remove(&oldest) {
                book.held -= holder.bytes;
                if let Some(drop_it) = holder.drop_it.take() {
                    let _ = drop_it.send(());
                }
            }
        }
        if book.held + bytes > self.heads.budget {
            return false;
        }
        book.held += bytes;
        if let Some(holder) = book.by_age.get_mut(&self.id) {
            holder.bytes += bytes;
        }
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut book = self.heads.book();
        if let Some(holder) = book.by_age.remove(&self.id) {
            book.held -= holder.bytes;
        }
    }
}

/// Why a head was not read to its end.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unread {
    /// Over the head limit: 431.
    TooLarge,
    /// The budget is full of newer heads: 503 with `Retry-After`.
    OverBudget,
    /// Dropped to make room for another, or the peer went away: closed without an answer.
    Dropped,
}

/// Whether `head` holds a complete request head (an empty line after the request line),
/// looking only at what came from `from` on (and the two bytes before it): each chunk is looked
/// at once, however long the head grows.
fn complete(head: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(2);
    let mut rest = &head[start..];
    while let Some(at) = rest.iter().position(|b| *b == b'\n') {
        let after = &rest[at + 1..];
        if after.first() == Some(&b'\n') || after.starts_with(b"\r\n") {
            return true;
        }
        rest = after;
    }
    false
}

/// Reads the first request head from `stream`, at most `limit` bytes of it, taking its bytes
/// from `ticket`'s budget. What was read (the head, and any body bytes behind it) is returned
/// for hyper to read again.
pub(super) async fn read(
    stream: &mut TcpStream,
    ticket: &Ticket,
    dropped: &mut oneshot::Receiver<()>,
    limit: usize,
) -> Result<Vec<u8>, Unread> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut chunk) => read,
            _ = &mut *dropped => return Err(Unread::Dropped),
        };
        let n = match read {
            Ok(0) | Err(_) => return Err(Unread::Dropped),
            Ok(n) => n,
        };
        if !ticket.take(n) {
            return Err(Unread::OverBudget);
        }
        let from = head.len();
        head.reserve_exact(n);
        head.extend_from_slice(&chunk[..n]);
        if complete(&head, from) {
            return Ok(head);
        }
        if head.len() > limit {
            return Err(Unread::TooLarge);
        }
    }
}

/// The answer to a head that was not read (`None`: close without one).
pub(super) fn answer(unread: &Unread) -> Option<&'static [u8]> {
    match unread {
        Unread::TooLarge => Some(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ),
        Unread::OverBudget => Some(
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ),
        Unread::Dropped => None,
    }
}

/// A stream whose first bytes are `prefix` (what [`read`] took), then the stream's own.
pub(super) struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl Prefixed {
    pub(super) fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                // Replayed: give the memory back.
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_empty_line() {
        assert!(complete(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", 0));
        assert!(complete(b"GET / HTTP/1.1\nhost: x\n\n", 0));
        assert!(!complete(b"GET / HTTP/1.1\r\nhost: x\r\n", 0));
        // The empty line split across two chunks is still seen.
        let head = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        assert!(complete(head, head.len() - 1));
        assert!(complete(head, head.len() - 2));
    }

    #[test]
    fn a_full_budget_drops_the_oldest_heads_for_a_newer_one_and_refuses_only_when_it_cannot() {
        let heads = Heads::new(10);
        let (old, mut old_dropped) = heads.start();
        let (middle, mut middle_dropped) = heads.start();
        assert!(old.take(4) && middle.take(4));
        let (new, _) = heads.start();
        // 4 + 4 + 5 > 10: the oldest makes room; the middle one stays.
        assert!(new.take(5));
        assert!(
            old_dropped.try_recv().is_ok(),
            "the oldest head was dropped"
        );
        assert!(middle_dropped.try_recv().is_err());
        assert_eq!(heads.held(), 9);
        // A head never drops a newer one: the middle head cannot grow past the budget.
        assert!(!middle.take(2));
        assert_eq!(heads.held(), 9);
        drop(new);
        drop(middle);
        drop(old);
        assert_eq!(heads.held(), 0, "every byte is given back");
        // A head bigger than the whole budget is refused.
        let (alone, _) = heads.start();
        assert!(!alone.take(11));
    }
}
