//! Fetches the assets of the gateway's browser pages from the npm registry at build time, so the gateway serves
//! them itself and the pages work on a machine with no internet access: GraphiQL's browser bundle and the React it
//! runs on for `/playground`, Swagger UI for `/api/v1/reference`.
//!
//! Each package is pinned by version and by the integrity hash its registry publishes; `npm pack` downloads the
//! tarball (or takes it from npm's cache, so a rebuild needs no network) and checks it against that hash, and this
//! script refuses any tarball whose hash is not the pinned one. Only the few minified files a page loads are
//! unpacked, into `OUT_DIR/<page>/`; nothing from the packages is kept in the repository. Each version is passed to
//! the compiler as `<PAGE>_<PACKAGE>_VERSION` (`PLAYGROUND_REACT_DOM_VERSION`), since it names the assets' URLs.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// A page and the pinned packages it takes its assets from.
struct Page {
    /// The folder under `OUT_DIR` its assets are unpacked into, and the prefix of its version variables.
    name: &'static str,
    packages: &'static [Package],
}

/// A pinned npm package and the files a page takes from it.
struct Package {
    name: &'static str,
    version: &'static str,
    /// The registry's `dist.integrity` of this version's tarball.
    integrity: &'static str,
    /// Paths inside the tarball (under `package/`), unpacked flat into the page's assets folder.
    files: &'static [&'static str],
}

const PAGES: &[Page] = &[
    // GraphiQL 3 is the last major version with a self-contained browser bundle (later ones need a bundler).
    Page {
        name: "playground",
        packages: &[
            Package {
                name: "graphiql",
                version: "3.8.3",
                integrity: "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
                files: &["graphiql.min.js", "graphiql.min.css"],
            },
            Package {
                name: "react",
                version: "18.3.1",
                integrity: "sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==",
                files: &["umd/react.production.min.js"],
            },
            Package {
                name: "react-dom",
                version: "18.3.1",
                integrity: "sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==",
                files: &["umd/react-dom.production.min.js"],
            },
        ],
    },
    // Swagger UI 5 reads OpenAPI 3.1; its bundle carries React and everything else it needs.
    Page {
        name: "reference",
        packages: &[Package {
            name: "swagger-ui-dist",
            version: "5.35.0",
            integrity: "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
            files: &["swagger-ui-bundle.js", "swagger-ui.css"],
        }],
    },
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let tarballs = out_dir.join("npm");
    create_dir(&tarballs);
    for page in PAGES {
        let assets = out_dir.join(page.name);
        create_dir(&assets);
        for package in page.packages {
            let tarball = pack(package, &tarballs);
            unpack(package, &tarball, &assets);
        }
    }
    // The versions name the assets' URLs, so browsers may cache them for good.
    for page in PAGES {
        for package in page.packages {
            let variable = format!("{}_{}_VERSION", page.name, package.name).to_uppercase().replace('-', "_");
            println!("cargo::rustc-env={variable}={}", package.version);
        }
    }
}

fn create_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}

/// Downloads (or takes from npm's cache) the package's tarball and checks its integrity.
fn pack(package: &Package, destination: &Path) -> PathBuf {
    let spec = format!("{}@{}", package.name, package.version);
    let output = Command::new("npm")
        .args(["pack", &spec, "--json", "--prefer-offline", "--ignore-scripts", "--pack-destination"])
        .arg(destination)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the gateway's build runs `npm pack {spec}` to fetch the assets of the gateway's pages, and npm could not be \
                 started ({e}); install Node.js with npm (build time only)"
            )
        });
    assert!(
        output.status.success(),
        "`npm pack {spec}` failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("`npm pack {spec} --json` printed something other than JSON: {e}"));
    let packed = &report[0];
    let integrity = packed["integrity"].as_str().unwrap_or_default();
    assert_eq!(
        integrity, package.integrity,
        "npm's tarball of {spec} does not have the pinned integrity hash; refusing it"
    );
    let filename = packed["filename"].as_str().expect("npm pack names the tarball it wrote");
    destination.join(filename)
}

/// Unpacks the package's listed files, flat, into `assets`.
fn unpack(package: &Package, tarball: &Path, assets: &Path) {
    let staging = assets.join(format!(".{}", package.name));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).expect("cannot create the staging folder");
    let members: Vec<String> = package.files.iter().map(|file| format!("package/{file}")).collect();
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(&staging)
        .args(&members)
        .status()
        .expect("tar could not be started");
    assert!(status.success(), "tar could not unpack {members:?} from {}", tarball.display());
    for (file, member) in package.files.iter().zip(&members) {
        let name = Path::new(file).file_name().expect("a file name");
        std::fs::rename(staging.join(member), assets.join(name))
            .unwrap_or_else(|e| panic!("cannot move {member} into place: {e}"));
    }
    let _ = std::fs::remove_dir_all(&staging);
}
