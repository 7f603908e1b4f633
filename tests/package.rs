//! The Debian package: `cargo deb` builds it (from the binary these tests use) and it
//! holds the binary, the unit, the example configuration as a conffile in /etc/cryowatch,
//! the docs, and maintainer scripts that create the service user.

mod common;

use std::process::Command;

use common::tests_dir;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?}: {e} (bash tests/run.sh installs cargo-deb and dpkg-deb comes with Debian)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_builds_and_holds_what_an_installation_needs() {
    let dir = tempfile::tempdir().expect("dir");
    let root = tests_dir().join("..");
    // deploy/build-deb.sh, as INSTALL.md builds it; --no-build with the dev profile packs
    // the binary this test run built (a release build is what real releases use).
    run(Command::new("bash")
        .current_dir(&root)
        .arg("deploy/build-deb.sh")
        .args(["--no-build", "--profile", "dev", "--quiet", "--fast", "-o"])
        .arg(dir.path()));
    let deb = std::fs::read_dir(dir.path())
        .expect("read dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was written");
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/cryowatch",
        "./usr/lib/systemd/system/cryowatch.service",
        "./etc/cryowatch/cryowatch.toml",
        "./usr/share/doc/cryowatch/README.md",
        "./usr/share/doc/cryowatch/examples/cryowatch.example.toml",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    let binary = contents
        .lines()
        .find(|l| l.ends_with("./usr/bin/cryowatch"))
        .unwrap_or_default();
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");
    let config = contents
        .lines()
        .find(|l| l.ends_with("./etc/cryowatch/cryowatch.toml"))
        .unwrap_or_default();
    assert!(
        config.starts_with("-rw-r-----"),
        "the configuration holds secrets' names: {config}"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(
        info.contains("Package: cryowatch") && info.contains("adduser"),
        "{info}"
    );
    let package = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package"));
    assert_eq!(package.trim(), "cryowatch");
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let postinst = std::fs::read_to_string(control.join("postinst")).expect("postinst");
    assert!(
        postinst.contains("adduser --system") && postinst.contains("dialout"),
        "{postinst}"
    );
    let listed = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(listed.trim(), "/etc/cryowatch/cryowatch.toml");
    // md5sums: every shipped file but the conffile, with the sum of what is in the package.
    let sums = std::fs::read_to_string(control.join("md5sums")).expect("md5sums in the control archive");
    let unpacked = dir.path().join("unpacked");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let check = run(Command::new("md5sum")
        .arg("--check")
        .arg(control.join("md5sums"))
        .current_dir(&unpacked));
    assert!(check.contains("usr/bin/cryowatch: OK"), "{check}");
    assert!(
        !sums.contains("etc/cryowatch"),
        "the conffile is dpkg's to sum:\n{sums}"
    );
    assert!(
        info.contains("ca-certificates"),
        "no dependency on the trust store:\n{info}"
    );
    // remove stops the service; purge removes its links; the store stays.
    let prerm = std::fs::read_to_string(control.join("prerm")).expect("prerm");
    assert!(prerm.contains("deb-systemd-invoke stop cryowatch.service"), "{prerm}");
    let postrm = std::fs::read_to_string(control.join("postrm")).expect("postrm");
    assert!(
        postrm.contains("deb-systemd-helper purge cryowatch.service") && postrm.contains("kept /var/lib/cryowatch"),
        "{postrm}"
    );
}
