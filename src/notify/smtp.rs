//! Email through an SMTP server (plain, STARTTLS or implicit TLS; optional AUTH).
//!
//! One connection per message: connect, (STARTTLS,) AUTH, MAIL/RCPT/DATA, QUIT. Pages
//! are rare, so nothing is pooled, and a half-finished session is never reused. The
//! whole attempt runs under one timeout: lettre's asynchronous client bounds only the
//! TCP connect, and a server that accepts and then says nothing must not hold a page
//! forever. On a timeout the socket is simply dropped.
//!
//! Every message carries a `Message-ID` derived from the outbox id, so a message
//! resent after a crash is recognisably the same notification, and
//! `X-Cryowatch-Alarm` when it is about an alarm.

use std::fmt;
use std::time::Duration;

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use super::channel::{Delivery, Outgoing, SetupError};
use crate::config::notify::{Channel, ChannelKind, SmtpTls};

/// Time allowed for one whole attempt (connect, TLS, AUTH, message).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Time allowed for QUIT after the server accepted the message. Its outcome does not
/// change the result: the message is already accepted.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Header naming the alarm a message is about.
pub const ALARM_HEADER: &str = "X-Cryowatch-Alarm";

/// How the connection is protected. The TLS parameters check the certificate for
/// `host` against the system trust store and the channel's `ca_file` ([`crate::tls`]).
#[derive(Clone)]
enum Security {
    Plain,
    StartTls(TlsParameters),
    Tls(TlsParameters),
}

impl Security {
    fn name(&self) -> &'static str {
        match self {
            Security::Plain => "none",
            Security::StartTls(_) => "starttls",
            Security::Tls(_) => "tls",
        }
    }
}

/// An `smtp` channel.
pub struct SmtpChannel {
    id: String,
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    from: Mailbox,
    /// Right-hand side of the Message-ID: the domain of `from`.
    id_domain: String,
    /// Optional installation-specific part of the Message-ID.
    id_scope: Option<String>,
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("id", &self.id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.security.name())
            .field("auth", &self.credentials.is_some())
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where in the session an error happened, for the reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connect,
    StartTls,
    Auth,
    Send,
}

impl Stage {
    fn describe(self) -> &'static str {
        match self {
            Stage::Connect => "connecting to",
            Stage::StartTls => "STARTTLS with",
            Stage::Auth => "authentication at",
            Stage::Send => "sending through",
        }
    }
}

/// What went wrong, reduced to what decides whether to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// The server answered with this reply code.
    Reply(u16),
    /// The TLS peer's certificate (or TLS parameters) were refused: a person must act
    /// (set `ca_file`, install the CA, renew the certificate), after which a later
    /// attempt works without a restart of anything.
    Certificate(String),
    /// Refused before anything was sent: no STARTTLS offered, no usable AUTH
    /// mechanism, an address the server cannot take.
    Client,
    /// Network trouble: refused connection, reset, timeout, garbled reply.
    Transport,
}

impl Fault {
    fn of(err: &SmtpError, host: &str) -> Fault {
        if let Some(code) = err.status() {
            return Fault::Reply(code.into());
        }
        if let Some(problem) = crate::tls::certificate_problem(err, host) {
            return Fault::Certificate(problem);
        }
        if err.is_client() {
            return Fault::Client;
        }
        Fault::Transport
    }

    /// 4xx replies, network trouble and certificate problems may pass (the last once
    /// someone installs the CA or renews the certificate); 5xx replies and what the
    /// server refused before anything was sent will not.
    fn retry(&self) -> bool {
        match self {
            Fault::Reply(code) => (400..500).contains(code),
            Fault::Client => false,
            Fault::Certificate(_) | Fault::Transport => true,
        }
    }
}

fn describe_reply(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    if lines.is_empty() {
        response.code().to_string()
    } else {
        format!("{} {}", response.code(), lines.join(" "))
    }
}

/// The domain of an address for the Message-ID; `localhost` if it has none usable.
fn message_id_domain(from: &Mailbox) -> String {
    let domain = from.email.domain().trim_matches(|c| c == '[' || c == ']');
    if domain.is_empty() {
        "localhost".to_string()
    } else {
        domain.to_string()
    }
}

/// Keeps only what may appear in the left part of a Message-ID.
fn id_token(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

impl SmtpChannel {
    /// Sets up the channel from its checked configuration. Nothing is contacted yet.
    pub fn new(channel: &Channel) -> Result<SmtpChannel, SetupError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fail = |reason: String| SetupError {
            channel: channel.id.clone(),
            reason,
        };
        let ChannelKind::Smtp {
            host,
            port,
            tls,
            username,
            password,
            from,
        } = &channel.kind
        else {
            return Err(fail("not an smtp channel".into()));
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| fail(format!("`from` {from:?} is not an email address: {e}")))?;
        let parameters = || {
            let trust =
                crate::tls::Trust::load(channel.ca_file.as_deref()).map_err(|e| fail(format!("ca_file {e}")))?;
            trust.smtp_parameters(host).map_err(fail)
        };
        let security = match tls {
            SmtpTls::None => Security::Plain,
            SmtpTls::StartTls => Security::StartTls(parameters()?),
            SmtpTls::Tls => Security::Tls(parameters()?),
        };
        let credentials = match (username, password) {
            (Some(user), Some(pass)) => Some(Credentials::new(user.clone(), pass.0.clone())),
            (Some(user), None) => Some(Credentials::new(user.clone(), String::new())),
            (None, Some(_)) => return Err(fail("a password is set but no username".into())),
            (None, None) => None,
        };
        Ok(SmtpChannel {
            id: channel.id.clone(),
            host: host.clone(),
            port: *port,
            security,
            credentials,
            id_domain: message_id_domain(&from),
            from,
            id_scope: None,
            hello: ClientId::default(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Time allowed for one whole attempt (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> SmtpChannel {
        self.timeout = timeout;
        self
    }

    /// Adds an installation-specific part to every Message-ID
    /// (`<cryowatch-{scope}-{id}@domain>`), so that outbox ids starting again after a
    /// new store cannot collide with earlier messages that mail systems remember.
    /// Only `A-Z a-z 0-9 - . _` are kept.
    pub fn with_message_id_scope(mut self, scope: &str) -> SmtpChannel {
        let scope = id_token(scope);
        self.id_scope = (!scope.is_empty()).then_some(scope);
        self
    }

    /// The Message-ID of the message for outbox id `id`.
    pub fn message_id(&self, id: i64) -> String {
        match &self.id_scope {
            Some(scope) => format!("<cryowatch-{scope}-{id}@{}>", self.id_domain),
            None => format!("<cryowatch-{id}@{}>", self.id_domain),
        }
    }

    /// Mails `msg` to its contact's email address.
    pub async fn send(&self, msg: &Outgoing) -> Delivery {
        let Some(address) = msg.contact.email.as_deref().map(str::trim).filter(|a| !a.is_empty()) else {
            return Delivery::Unreachable {
                reason: format!("contact {} has no email address", msg.contact.id),
            };
        };
        let message = match self.build(msg, address) {
            Ok(m) => m,
            Err(d) => return d,
        };
        match self.session(Some(&message)).await {
            Ok((detail, mut conn)) => {
                let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.quit()).await;
                Delivery::Sent { detail }
            }
            Err(failed) => failed,
        }
    }

    /// Connects, secures (STARTTLS or TLS, with the channel's trust) and authenticates
    /// exactly as a page does, then QUITs without sending: the self-test's proof that
    /// this channel reaches its server. `Err`: the reason a page would fail now.
    pub async fn probe(&self) -> Result<String, String> {
        match self.session(None).await {
            Ok((detail, mut conn)) => {
                let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.quit()).await;
                Ok(detail)
            }
            Err(Delivery::Failed { reason, .. } | Delivery::Unreachable { reason }) => Err(reason),
            Err(Delivery::Sent { detail }) => Ok(detail),
        }
    }

    /// One session under the attempt's timeout: connect, secure, authenticate, and send
    /// `message` if there is one. On success the still-open connection is returned, so
    /// QUIT can be sent outside the timeout, with the server's answer (or what was
    /// proved, without a message).
    async fn session(&self, message: Option<&Message>) -> Result<(String, AsyncSmtpConnection), Delivery> {
        let too_slow = || {
            Delivery::failed(
                true,
                format!(
                    "no answer from SMTP server {}:{} within {:?}",
                    self.host, self.port, self.timeout
                ),
            )
        };
        // Plain and STARTTLS sessions run on our own socket, with Nagle off: lettre
        // writes the body and the final "." separately, and with Nagle on the "." waits
        // for the server's delayed ACK (about 40 ms per page on Linux, up to 200 ms
        // elsewhere).
        let stream = if matches!(self.security, Security::Tls(_)) {
            None
        } else {
            let addr = (self.host.as_str(), self.port);
            match tokio::time::timeout(self.timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    Some(stream)
                }
                Ok(Err(e)) => {
                    return Err(Delivery::failed(
                        true,
                        format!("{} {}:{}: {e}", Stage::Connect.describe(), self.host, self.port),
                    ));
                }
                Err(_) => return Err(too_slow()),
            }
        };
        let (stage, result) = tokio::time::timeout(self.timeout, self.deliver(message, stream))
            .await
            .map_err(|_| too_slow())?;
        result.map_err(|err| {
            let fault = Fault::of(&err, &self.host);
            let what = match &fault {
                Fault::Certificate(problem) => problem.clone(),
                _ => err.to_string(),
            };
            Delivery::failed(
                fault.retry(),
                format!("{} {}:{}: {what}", stage.describe(), self.host, self.port),
            )
        })
    }

    fn build(&self, msg: &Outgoing, address: &str) -> Result<Message, Delivery> {
        let to_address = address.parse().map_err(|e| Delivery::Unreachable {
            reason: format!(
                "contact {}: {address:?} is not a usable email address: {e}",
                msg.contact.id
            ),
        })?;
        let name = msg.contact.name.trim();
        let to = Mailbox::new((!name.is_empty()).then(|| name.to_string()), to_address);
        let mut builder: MessageBuilder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone())
            .message_id(Some(self.message_id(msg.id)))
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_string(),
            ));
        if let Some(alarm) = msg.alarm {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(ALARM_HEADER),
                alarm.to_string(),
            ));
        }
        builder
            .body(msg.text.clone())
            .map_err(|e| Delivery::failed(false, format!("cannot build the message: {e}")))
    }

    /// One session. Returns the stage reached with the result, and on success the
    /// still-open connection so QUIT can be sent outside the attempt's timeout.
    async fn deliver(
        &self,
        message: Option<&Message>,
        stream: Option<tokio::net::TcpStream>,
    ) -> (Stage, Result<(String, AsyncSmtpConnection), SmtpError>) {
        let wrapper = match &self.security {
            Security::Tls(params) => Some(params.clone()),
            Security::Plain | Security::StartTls(_) => None,
        };
        let connected = match (wrapper, stream) {
            (None, Some(stream)) => AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await,
            (wrapper, _) => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    wrapper,
                    None,
                )
                .await
            }
        };
        let mut conn = match connected {
            Ok(c) => c,
            Err(e) => return (Stage::Connect, Err(e)),
        };
        if let Security::StartTls(params) = &self.security
            && let Err(e) = conn.starttls(params.clone(), &self.hello).await
        {
            return (Stage::StartTls, Err(e));
        }
        if let Some(credentials) = &self.credentials
            && let Err(e) = conn.auth(DEFAULT_MECHANISMS, credentials).await
        {
            conn.abort().await;
            return (Stage::Auth, Err(e));
        }
        let Some(message) = message else {
            let proved = match (&self.security, &self.credentials) {
                (Security::Plain, None) => "connected (no TLS configured)",
                (Security::Plain, Some(_)) => "connected and authenticated (no TLS configured)",
                (_, None) => "TLS handshake ok (certificate trusted)",
                (_, Some(_)) => "TLS handshake ok (certificate trusted); authenticated",
            };
            return (Stage::Auth, Ok((format!("{} {proved}", self.security.name()), conn)));
        };
        match conn.send(message.envelope(), &message.formatted()).await {
            Ok(response) => (Stage::Send, Ok((describe_reply(&response), conn))),
            Err(e) => {
                conn.abort().await;
                (Stage::Send, Err(e))
            }
        }
    }
}

/// Whether an SMTP reply code is a transient failure (4xx).
pub fn is_transient_code(code: u16) -> bool {
    Fault::Reply(code).retry()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::config::notify::Contact;

    fn channel(kind: ChannelKind) -> Channel {
        Channel {
            id: "email".into(),
            kind,
            fallback: None,
            ca_file: None,
        }
    }

    fn smtp(from: &str, tls: SmtpTls) -> ChannelKind {
        ChannelKind::Smtp {
            host: "smtp.example.org".into(),
            port: 587,
            tls,
            username: Some("u".into()),
            password: Some(Secret("p".into())),
            from: from.into(),
        }
    }

    fn outgoing(email: Option<&str>) -> Outgoing {
        Outgoing {
            id: 42,
            contact: Contact {
                id: "alice".into(),
                name: "Alice Example".into(),
                email: email.map(str::to_string),
                phone: None,
            },
            subject: "ALARM dewar-1 -140.2 °C".into(),
            text: "Dewar 1 is warming.".into(),
            sms: "dewar-1 -140.2C".into(),
            alarm: Some(7),
        }
    }

    #[test]
    fn reply_codes_decide_retry() {
        for code in [421, 450, 451, 452, 454] {
            assert!(Fault::Reply(code).retry(), "{code}");
        }
        for code in [500, 530, 535, 550, 552, 553, 554] {
            assert!(!Fault::Reply(code).retry(), "{code}");
        }
        assert!(is_transient_code(451));
        assert!(!is_transient_code(550));
    }

    #[test]
    fn network_and_certificate_trouble_retry_refusals_do_not() {
        assert!(Fault::Transport.retry());
        assert!(!Fault::Client.retry());
        assert!(Fault::Certificate("UnknownIssuer".into()).retry());
    }

    #[test]
    fn wrong_channel_kind_and_bad_from_are_refused() {
        let err = SmtpChannel::new(&channel(ChannelKind::Webhook { url: "http://x".into() })).err();
        assert!(err.is_some_and(|e| e.to_string().contains("not an smtp channel")));
        let err = SmtpChannel::new(&channel(smtp("not an address", SmtpTls::None))).err();
        assert!(err.is_some_and(|e| e.reason.contains("`from`")));
    }

    #[test]
    fn message_id_is_stable_and_uses_the_from_domain() {
        let ch = SmtpChannel::new(&channel(smtp(
            "cryowatch <cryowatch@lab.example.org>",
            SmtpTls::StartTls,
        )))
        .expect("channel");
        assert_eq!(ch.message_id(42), "<cryowatch-42@lab.example.org>");
        assert_eq!(ch.message_id(42), ch.message_id(42));
        let ch = ch.with_message_id_scope("site A/01");
        assert_eq!(ch.message_id(42), "<cryowatch-siteA01-42@lab.example.org>");
    }

    #[test]
    fn message_has_headers_and_plain_body() {
        let ch = SmtpChannel::new(&channel(smtp("cryowatch@lab.example.org", SmtpTls::None))).expect("channel");
        let msg = outgoing(Some("alice@example.org"));
        let built = ch.build(&msg, "alice@example.org").expect("message");
        let text = String::from_utf8_lossy(&built.formatted()).to_string();
        assert!(text.contains("Message-ID: <cryowatch-42@lab.example.org>"), "{text}");
        assert!(text.contains("X-Cryowatch-Alarm: 7"), "{text}");
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(text.contains("To: \"Alice Example\" <alice@example.org>"), "{text}");
        let env = built.envelope();
        assert_eq!(env.to().len(), 1);
        assert_eq!(env.to()[0].to_string(), "alice@example.org");
    }

    #[tokio::test]
    async fn no_or_bad_email_is_unreachable() {
        let ch = SmtpChannel::new(&channel(smtp("cryowatch@lab.example.org", SmtpTls::None))).expect("channel");
        for email in [None, Some(""), Some("not-an-address")] {
            let d = ch.send(&outgoing(email)).await;
            assert!(matches!(d, Delivery::Unreachable { .. }), "{email:?}: {d:?}");
        }
    }
}
