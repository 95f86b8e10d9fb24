//! The README's tower example is `examples/readme.rs`, word for word: `scripts/test` runs the
//! example, so the README's code runs as shown.

#[test]
fn the_readme_shows_the_readme_example_verbatim() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../examples/readme.rs");
    let section = readme
        .split("## Using it with tower")
        .nth(1)
        .expect("README.md has a section \"Using it with tower\"");
    let code = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section has a ```rust block");
    assert_eq!(
        code, example,
        "README.md's tower example and tower/examples/readme.rs differ"
    );
}
