//! Sending through a real SMTP server on 127.0.0.1 (Python's aiosmtpd, installed by
//! `scripts/install-test-deps`): never skipped when it is missing.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aegis_testkit::{text, ReportWorld};
use mailparse::MailHeaderMap;

struct SmtpServer {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_server(dir: &std::path::Path) -> SmtpServer {
    let port = free_port();
    let maildir = dir.join("maildir");
    let child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut server = SmtpServer {
        child,
        port,
        maildir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                std::io::Read::read_to_string(&mut e, &mut err).ok();
            }
            panic!("aiosmtpd exited ({status}): {err}\ninstall it with `pip install aiosmtpd` (scripts/install-test-deps does)");
        }
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn delivered(server: &SmtpServer) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let files: Vec<_> = std::fs::read_dir(server.maildir.join("new"))
            .map(|d| {
                d.map(|e| std::fs::read(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if !files.is_empty() || Instant::now() > deadline {
            return files;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn smtp_config(port: u16, extra: &str) -> String {
    format!(
        "to = [\"admin@example.org\", \"Security Team <security@example.org>\"]\nfrom = \"Aegis <aegis@example.org>\"\n\
         smtp_host = \"127.0.0.1\"\nsmtp_port = {port}\nsmtp_tls = \"none\"\n{extra}"
    )
}

#[tokio::test]
async fn the_report_arrives_with_both_parts_and_the_inline_chart() {
    let world = ReportWorld::seeded().await;
    let server = smtp_server(world.path());
    let out = world.report(&smtp_config(server.port, ""), &["--period", "yesterday"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("sent to admin@example.org, security@example.org"));

    let mails = delivered(&server);
    assert_eq!(mails.len(), 1, "one message for both recipients");
    let mail = mailparse::parse_mail(&mails[0]).unwrap();
    let subject = mail.headers.get_first_value("Subject").unwrap();
    assert!(
        subject.starts_with("[Aegis] reporter: 4 bans from 2 IPs on "),
        "{subject}"
    );
    assert_eq!(
        mail.headers.get_first_value("From").unwrap(),
        "Aegis <aegis@example.org>"
    );
    let to = mail.headers.get_first_value("To").unwrap();
    assert!(
        to.contains("admin@example.org") && to.contains("security@example.org"),
        "{to}"
    );
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");

    let text_part = &mail.subparts[0];
    assert_eq!(text_part.ctype.mimetype, "text/plain");
    let body = text_part.get_body().unwrap();
    assert!(
        body.contains("203.0.113.7  3 bans") && body.contains("Hit several hosts"),
        "{body}"
    );

    let related = &mail.subparts[1];
    assert_eq!(related.ctype.mimetype, "multipart/related");
    let html = related.subparts[0].get_body().unwrap();
    assert!(html.contains("src=\"cid:chart\""), "{html}");
    assert!(
        html.contains("&lt;b&gt;Chinanet&lt;&#x2F;b&gt;")
            || html.contains("&lt;b&gt;Chinanet&lt;/b&gt;"),
        "escaped: {html}"
    );
    let image = &related.subparts[1];
    assert_eq!(image.ctype.mimetype, "image/png");
    assert_eq!(
        image.headers.get_first_value("Content-ID").unwrap(),
        "<chart>"
    );
    assert!(image.get_body_raw().unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test]
async fn send_test_and_advice_on_failures() {
    let world = ReportWorld::seeded().await;
    let server = smtp_server(world.path());
    let out = world.report(&smtp_config(server.port, ""), &["send-test"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(delivered(&server).len(), 1);

    // TLS expected, plain server: a wrong port/TLS combination, said so.
    let tls = smtp_config(server.port, "")
        .replace("smtp_tls = \"none\"", "smtp_tls = \"tls\"")
        .replace("127.0.0.1", "localhost");
    let out = world.report(&tls, &["send-test"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("smtp_tls"),
        "{}",
        text(&out)
    );

    // Nothing listening.
    let closed = smtp_config(free_port(), "");
    let out = world.report(&closed, &["send-test"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing listens"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn an_alert_arrives_by_mail_as_text_and_escaped_html() {
    let world = ReportWorld::seeded().await;
    let server = smtp_server(world.path());
    let config = format!(
        "{}\n[[channel]]\nname = \"mail\"\nkind = \"email\"\nto = [\"oncall@example.org\"]\n\
         [[alert]]\nname = \"<b>ssh</b>\"\nchannels = [\"mail\"]\nkind = \"bans\"\n",
        smtp_config(server.port, "")
    );
    // A ban the watcher sees as new: within its first minute.
    let store = aegis_testkit::open_sqlite(&world.path().join("aegis.db")).await;
    let ban = aegis_testkit::traffic::ban(
        "203.0.113.77",
        "sshd",
        "web1",
        chrono::Utc::now() - chrono::Duration::seconds(5),
    );
    store.record(&ban).await.unwrap();
    let out = world.report(&config, &["alert", "watch", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sent 1 alert(s) to \"mail\""),
        "{}",
        text(&out)
    );
    let mails = delivered(&server);
    assert_eq!(mails.len(), 1);
    let mail = mailparse::parse_mail(&mails[0]).unwrap();
    assert_eq!(
        mail.headers.get_first_value("Subject").unwrap(),
        "<b>ssh</b>: 1 new ban"
    );
    assert_eq!(
        mail.headers.get_first_value("To").unwrap(),
        "oncall@example.org"
    );
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let text_body = mail.subparts[0].get_body().unwrap();
    assert!(
        text_body.contains("203.0.113.77: sshd on web1 at "),
        "{text_body}"
    );
    let html = mail.subparts[1].get_body().unwrap();
    assert!(html.contains("&lt;b&gt;ssh&lt;/b&gt;: 1 new ban"), "{html}");
    assert!(!html.contains("<b>ssh"), "{html}");

    // Run again: nothing new, nothing sent twice.
    let out = world.report(&config, &["alert", "watch", "--once"]);
    assert!(out.status.success(), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(delivered(&server).len(), 1);
}
