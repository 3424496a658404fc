//! Compiles the one C file: long-double arithmetic for INCRBYFLOAT (see
//! src/util/ldouble.c for why it must be C's `long double`).
fn main() {
    println!("cargo:rerun-if-changed=src/util/ldouble.c");
    cc::Build::new()
        .file("src/util/ldouble.c")
        .warnings(true)
        .compile("cinnabar_ldouble");
}
