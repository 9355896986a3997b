//! The HTTP probe against a real nginx (Debian package) on 127.0.0.1, with
//! server-side delays from the echo module: what an operator's web tier does.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// nginx running in the foreground under a private prefix; stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM first: the master then stops its worker, which a SIGKILL of
    /// the master would leave running, orphaned. SIGKILL only if it lingers.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ECHO_MODULE: &str = "/usr/share/nginx/modules/ngx_http_echo_module.so";

fn nginx() -> Option<Nginx> {
    let bin = PathBuf::from("/usr/sbin/nginx");
    if !bin.exists() || !Path::new(ECHO_MODULE).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx and libnginx-mod-http-echo are required in CI (.ci/install-deps)"
        );
        eprintln!("skipping: nginx with the echo module is not installed (run .ci/install-deps)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display().to_string();
    let port = support::free_port();
    let conf = format!(
        r#"load_module {ECHO_MODULE};
worker_processes 1;
pid {p}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {p}/body;
  proxy_temp_path {p}/proxy;
  fastcgi_temp_path {p}/fastcgi;
  uwsgi_temp_path {p}/uwsgi;
  scgi_temp_path {p}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /owa/healthcheck.htm {{ echo_sleep $arg_s; echo "200 OK"; }}
    location = /down {{ return 503 "maintenance"; }}
  }}
}}
"#
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new(bin)
        .args([
            "-p",
            &p,
            "-e",
            &format!("{p}/error.log"),
            "-c",
            &format!("{p}/nginx.conf"),
            "-g",
            "daemon off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Nginx {
        child,
        port,
        _dir: dir,
    };
    // Up to 10 s for nginx to listen.
    let mut tries = 0;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tries += 1;
        assert!(tries < 500, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(nginx)
}

fn probe(targets: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::write_file(dir.path(), "c.toml", targets);
    let out = Command::new(support::bin())
        .args(["probe", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn first_byte_follows_nginx_server_side_delay() {
    let _timed = support::timed();
    let Some(nginx) = nginx() else { return };
    let mut text = String::new();
    for (name, delay) in [("d0", "0"), ("d100", "0.1"), ("d300", "0.3")] {
        text.push_str(&format!(
            "[[target]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{}/owa/healthcheck.htm?s={delay}\"\ntimeout = \"3s\"\nbody_regex = \"200 OK\"\n",
            nginx.port
        ));
    }
    text.push_str(&format!(
        "[[target]]\nname = \"down\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{}/down\"\ntimeout = \"3s\"\n",
        nginx.port
    ));
    let results = probe(&text);
    let get = |name: &str| {
        results
            .iter()
            .find(|r| r["target"] == name)
            .unwrap()
            .clone()
    };
    for (name, secs) in [("d0", 0.0), ("d100", 0.1), ("d300", 0.3)] {
        let r = get(name);
        assert_eq!(r["success"], true, "{r}");
        let fb = r["phases"]["first_byte"].as_f64().unwrap();
        // nginx's timers have millisecond resolution and may fire a hair
        // before the delay as measured from the client (0.29997 s for 0.3).
        assert!(
            fb >= secs - 0.001 && fb < secs + 0.02,
            "{name}: first_byte {fb}"
        );
    }
    let down = get("down");
    assert_eq!(down["reason"], "status");
    assert_eq!(down["status"], 503);
}
