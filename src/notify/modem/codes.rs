//! What `+CMS ERROR` and `+CME ERROR` codes mean, and whether a retry can help.

/// Whether retrying can help, and what a `+CMS ERROR` code means (3GPP TS 27.005
/// 3.2.5: 0–127 are RP causes of TS 24.011 E.2, 128–255 TP-FCS values of TS 23.040
/// 9.2.3.22, 300–500 errors of the modem and the network).
///
/// Not retryable: the number, the subscription or the message itself is refused, or
/// the SIM needs a person (PIN, PUK, missing or wrong SIM, no SMSC configured). Only
/// another channel can help. Retryable: congestion, timeouts, no network service,
/// busy SIM or SMSC, full storage, and every code not listed.
pub fn cms_error(code: u16) -> (bool, &'static str) {
    match code {
        1 => (false, "unassigned number"),
        8 => (false, "operator determined barring"),
        10 => (false, "call barred"),
        21 => (false, "short message transfer rejected"),
        27 => (true, "destination out of service"),
        28 => (false, "unidentified subscriber"),
        29 => (false, "facility rejected"),
        30 => (false, "unknown subscriber"),
        38 => (true, "network out of order"),
        41 => (true, "temporary failure"),
        42 => (true, "congestion"),
        47 => (true, "resources unavailable"),
        50 => (false, "requested facility not subscribed"),
        69 => (false, "requested facility not implemented"),
        81 => (true, "invalid short message transfer reference value"),
        95 => (false, "invalid message"),
        96 => (false, "invalid mandatory information"),
        97 => (false, "message type non-existent or not implemented"),
        98 => (false, "message not compatible with short message protocol state"),
        99 => (false, "information element non-existent or not implemented"),
        111 => (true, "protocol error"),
        127 => (true, "interworking error"),
        128..=191 => (
            false,
            "message refused by the service centre (TP-PID, TP-DCS or command error)",
        ),
        192 => (true, "service centre busy"),
        193 => (false, "no service centre subscription"),
        194 => (true, "service centre system failure"),
        195 => (false, "invalid destination address"),
        196 => (false, "destination barred"),
        197 => (false, "rejected as a duplicate"),
        198 | 199 => (false, "validity period not supported"),
        208 => (true, "SIM SMS storage full"),
        209 => (false, "no SMS storage on the SIM"),
        210 => (true, "error in the modem"),
        211 => (true, "memory capacity exceeded"),
        212 => (true, "SIM toolkit busy"),
        213 => (true, "SIM data download error"),
        300 => (true, "modem failure"),
        301 => (true, "SMS service of the modem reserved"),
        302 => (false, "operation not allowed"),
        303 => (false, "operation not supported"),
        304 => (false, "invalid PDU mode parameter"),
        305 => (false, "invalid text mode parameter"),
        310 => (false, "SIM not inserted"),
        311 => (false, "SIM PIN required"),
        312 => (false, "PH-SIM PIN required"),
        313 => (false, "SIM failure"),
        314 => (true, "SIM busy"),
        315 => (false, "SIM wrong"),
        316 => (false, "SIM PUK required"),
        317 => (false, "SIM PIN2 required"),
        318 => (false, "SIM PUK2 required"),
        320 => (true, "memory failure"),
        321 => (false, "invalid memory index"),
        322 => (true, "memory full"),
        330 => (false, "SMSC address unknown"),
        331 => (true, "no network service"),
        332 => (true, "network timeout"),
        340 => (false, "no +CNMA acknowledgement expected"),
        500 => (true, "unknown error"),
        512.. => (true, "manufacturer specific error"),
        _ => (true, "unspecified error"),
    }
}

/// Like [`cms_error`], for `+CME ERROR` codes (3GPP TS 27.007 9.2).
pub fn cme_error(code: u16) -> (bool, &'static str) {
    match code {
        0 => (true, "phone failure"),
        3 => (false, "operation not allowed"),
        4 => (false, "operation not supported"),
        10 => (false, "SIM not inserted"),
        11 => (false, "SIM PIN required"),
        12 => (false, "SIM PUK required"),
        13 => (false, "SIM failure"),
        14 => (true, "SIM busy"),
        15 => (false, "SIM wrong"),
        30 => (true, "no network service"),
        31 => (true, "network timeout"),
        32 => (false, "network not allowed, emergency calls only"),
        100 => (true, "unknown error"),
        _ => (true, "unspecified error"),
    }
}
