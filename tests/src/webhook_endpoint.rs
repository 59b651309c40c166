//! A storefront's webhook endpoint for tests: a real HTTP/1.1 listener on
//! loopback that keeps every request it receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One request the endpoint received: its headers (names in lower case) and body.
pub type Request = (Vec<(String, String)>, Vec<u8>);

/// An endpoint at `http://127.0.0.1:PORT/hooks/cartback` that answers 503 to
/// its first `failures` requests, then 204; it keeps every request, in the
/// order they came.
pub fn webhook_endpoint(failures: usize) -> (String, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/hooks/cartback", listener.local_addr().unwrap().port());
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (_, headers, body) = read_request(&stream);
            let seen = {
                let mut kept = keep.lock().unwrap();
                kept.push((headers, body));
                kept.len()
            };
            let status = if seen <= failures { "503 Service Unavailable" } else { "204 No Content" };
            let mut stream = stream;
            let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, received)
}

/// Reads one HTTP/1.1 request: its request line (`GET /path HTTP/1.1`),
/// its headers (names in lower case) and its body.
pub fn read_request(stream: &TcpStream) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut line, mut headers) = (String::new(), Vec::new());
    reader.read_line(&mut line).unwrap();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let Some((name, value)) = header.trim_end().split_once(':') else { break };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (line.trim_end().to_owned(), headers, body)
}
