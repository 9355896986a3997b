//! A probe's TCP connection that knows when the data it reads arrived.
//!
//! A timestamp taken in user space after a read includes the scheduler's
//! delay in waking the probe: under CPU load that is milliseconds. Linux can
//! stamp every received packet in software (`SO_TIMESTAMPNS`) and tells a
//! `recvmsg` the stamp of the last packet it consumed, so [`StampedTcp`]
//! reads through `recvmsg` and notes, in the probe's shared [`Arrivals`], when
//! the data of its most recent read reached the machine. The [`Recorder`]
//! ends a phase that finished by reading a reply at that instant instead of
//! at the moment the probe got around to it.
//!
//! The kernel switches stamping on and off for the whole machine, lazily
//! (from a work queue) when the first socket asks and the last one stops: a
//! probe's first packets could miss it. [`keep_stamping`], called when a
//! target is prepared, holds it on for the life of the process, at the cost
//! of reading the clock once per packet received.
//!
//! The kernel stamps with the wall clock; it is turned into a monotonic
//! [`Instant`] at read time by subtracting its age. Where stamps are not
//! available (another OS, the option refused, a packet that came before the
//! option was set, a read that found the end of the stream), the time of the
//! read stands in: no better, and no worse, than before.
//!
//! [`Recorder`]: super::Recorder

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// When the data of the most recent read on a probe's connections arrived;
/// shared (cheaply cloned) by every connection of one probe run.
#[derive(Debug, Clone, Default)]
pub struct Arrivals(Arc<Mutex<Option<Instant>>>);

impl Arrivals {
    /// The arrival of the most recent read that completed, if any did.
    pub fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn record(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(at);
    }
}

/// A TCP stream whose reads record when their data arrived (see the module
/// documentation); writes go straight through.
#[derive(Debug)]
pub struct StampedTcp {
    inner: TcpStream,
    arrivals: Arrivals,
    /// Control message buffer for `recvmsg`, when the kernel stamps packets.
    #[cfg(target_os = "linux")]
    cmsg: Option<Vec<u8>>,
    /// Reads that carried a kernel stamp.
    stamped_reads: u64,
}

/// Keeps the kernel stamping received packets from now on, for the life of
/// the process (see the module documentation). Cheap to call again.
pub fn keep_stamping() {
    #[cfg(target_os = "linux")]
    linux::keep_stamping();
}

impl StampedTcp {
    /// Wraps a connected stream, asking the kernel to stamp what it receives;
    /// if it refuses, reads are timed when they complete.
    pub fn new(inner: TcpStream, arrivals: Arrivals) -> StampedTcp {
        keep_stamping();
        StampedTcp {
            #[cfg(target_os = "linux")]
            cmsg: linux::enable(&inner).then(|| nix::cmsg_space!(nix::sys::time::TimeSpec)),
            inner,
            arrivals,
            stamped_reads: 0,
        }
    }

    /// How many reads so far carried the kernel's stamp (the others were
    /// timed when they completed).
    pub fn stamped_reads(&self) -> u64 {
        self.stamped_reads
    }

    /// The TCP stream underneath.
    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }
}

/// Turns a wall-clock stamp (time since the Unix epoch) into an [`Instant`],
/// by its age now. A missing stamp, or one in the future (the wall clock was
/// stepped back), gives now.
fn arrival(stamp: Option<Duration>) -> Instant {
    let now = Instant::now();
    let age = stamp.and_then(|s| SystemTime::now().duration_since(UNIX_EPOCH + s).ok());
    age.and_then(|age| now.checked_sub(age)).unwrap_or(now)
}

impl AsyncRead for StampedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        #[cfg(target_os = "linux")]
        if let Some(cmsg) = &mut this.cmsg {
            let (n, stamp) = std::task::ready!(linux::poll_recv(&this.inner, cx, buf, cmsg))?;
            buf.advance(n);
            this.stamped_reads += u64::from(stamp.is_some());
            this.arrivals.record(arrival(stamp));
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.arrivals.record(arrival(None));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StampedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::sync::OnceLock;
    use std::task::{ready, Context, Poll};
    use std::time::Duration;

    use nix::sys::socket::{
        recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
        SockFlag, SockType,
    };
    use tokio::io::{Interest, ReadBuf};
    use tokio::net::TcpStream;

    /// A socket that asked for stamps and is never closed, so the kernel
    /// never switches them off; `None` if it could not be made.
    static KEEPER: OnceLock<Option<OwnedFd>> = OnceLock::new();

    pub(super) fn keep_stamping() {
        KEEPER.get_or_init(|| {
            let fd = socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC,
                None,
            )
            .ok()?;
            setsockopt(&fd, sockopt::ReceiveTimestampns, &true).ok()?;
            Some(fd)
        });
    }

    /// Asks the kernel for software receive stamps; whether it agreed.
    pub(super) fn enable(stream: &TcpStream) -> bool {
        setsockopt(stream, sockopt::ReceiveTimestampns, &true).is_ok()
    }

    /// Reads into the unfilled part of `buf` with `recvmsg`; the byte count
    /// (0 at the end of the stream) and the stamp of the last packet read.
    pub(super) fn poll_recv(
        stream: &TcpStream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        cmsg: &mut [u8],
    ) -> Poll<io::Result<(usize, Option<Duration>)>> {
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let result = stream.try_io(Interest::READABLE, || {
                let mut iov = [io::IoSliceMut::new(unfilled)];
                let msg = recvmsg::<()>(
                    stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut *cmsg),
                    MsgFlags::empty(),
                )
                .map_err(io::Error::from)?;
                let stamp = msg.cmsgs().ok().and_then(|mut all| {
                    all.find_map(|c| match c {
                        ControlMessageOwned::ScmTimestampns(ts) => Some(Duration::from(ts)),
                        _ => None,
                    })
                });
                Ok((msg.bytes, stamp))
            });
            match result {
                Ok(read) => return Poll::Ready(Ok(read)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stamped client and the server side of a loopback connection.
    async fn pair(arrivals: &Arrivals) -> (StampedTcp, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (StampedTcp::new(client, arrivals.clone()), server)
    }

    /// Waits (bounded) until the kernel stamps this connection's packets: it
    /// switches stamping on from a work queue, soon after it was first asked.
    async fn warm_up(client: &mut StampedTcp, server: &mut TcpStream) {
        for _ in 0..500 {
            server.write_all(b".").await.unwrap();
            client.read_exact(&mut [0u8; 1]).await.unwrap();
            if client.stamped_reads() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the kernel does not stamp received packets");
    }

    #[tokio::test]
    async fn a_late_read_reports_when_the_data_arrived() {
        let arrivals = Arrivals::default();
        let (mut client, mut server) = pair(&arrivals).await;
        assert_eq!(arrivals.last(), None);
        warm_up(&mut client, &mut server).await;
        let written = Instant::now();
        server.write_all(b"hello").await.unwrap();
        // The reader is kept away from the socket: this pause is the
        // condition under test (a probe woken late), not synchronisation.
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let n = client.read(&mut buf).await.unwrap();
        let read = Instant::now();
        assert_eq!(&buf[..n], b"hello");
        let at = arrivals.last().unwrap();
        // Two clocks meet in the conversion: allow for a rounding slip.
        assert!(
            at + Duration::from_millis(1) >= written,
            "arrival before the write"
        );
        assert!(
            at - written < Duration::from_millis(10),
            "arrival {:?} after the write, read {:?} after it",
            at - written,
            read - written
        );
    }

    #[tokio::test]
    async fn the_end_of_the_stream_is_timed_when_read() {
        let arrivals = Arrivals::default();
        let (mut client, server) = pair(&arrivals).await;
        drop(server);
        let mut buf = [0u8; 16];
        let before = Instant::now();
        assert_eq!(client.read(&mut buf).await.unwrap(), 0);
        assert!(arrivals.last().unwrap() >= before);
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (mut client, mut server) = pair(&Arrivals::default()).await;
        client.write_all(b"ping").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn stamps_in_the_future_or_missing_mean_now() {
        let before = Instant::now();
        let future =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(60);
        assert!(arrival(Some(future)) >= before);
        assert!(arrival(None) >= before);
        let past =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap() - Duration::from_millis(20);
        assert!(arrival(Some(past)) <= before);
    }
}
