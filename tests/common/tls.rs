//! A certificate authority of the test's own, made with the `openssl` command line: a
//! CA certificate (what a hospital's internal CA is to the daemon) and a server
//! certificate it signed for `localhost` and `127.0.0.1`, for exim, Mosquitto and the
//! HTTPS gateway. Nothing on the machine trusts the CA unless a test says so
//! (`ca_file`, or `SSL_CERT_FILE` standing for the system store).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestCa {
    /// The CA's certificate (PEM): what `ca_file` names.
    pub ca: PathBuf,
    /// The server certificate signed by the CA, and its key (PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl command line)");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// Makes the CA and the server certificate under `dir/ca` (readable by everyone:
    /// exim and Mosquitto may read them as their own users).
    pub fn make(dir: &Path) -> TestCa {
        let dir = dir.join("ca");
        std::fs::create_dir_all(&dir).expect("create the CA directory");
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=cryowatch test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca_args);
        let mut csr_args = vec!["req"];
        csr_args.extend(ec);
        csr_args.extend(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
        openssl(&dir, &csr_args);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the extensions file");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        for f in ["ca.pem", "server.pem", "server.key"] {
            set_mode(&dir.join(f), 0o644);
        }
        set_mode(&dir, 0o755);
        TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}
