//! A TCP relay that can be cut and restored: a store that goes away and comes
//! back with its data, as a network outage looks to its clients.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Relays a local port to `target` while up.
pub struct Relay {
    /// The port clients connect to.
    pub port: u16,
    target: SocketAddr,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// A relay to `target` on a free port, up.
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            port: listener.local_addr().unwrap().port(),
            target,
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (up, open, target) = (self.up.clone(), self.open.clone(), self.target);
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || loop {
            if !up.load(Ordering::SeqCst) {
                return; // the listener closes: connections are refused
            }
            match listener.accept() {
                Ok((client, _)) => {
                    let _ = client.set_nonblocking(false);
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    for s in [&client, &server] {
                        open.lock().unwrap().push(s.try_clone().unwrap());
                    }
                    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                    pipe(server, client);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return,
            }
        });
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Takes connections again, on the same port.
    pub fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}
