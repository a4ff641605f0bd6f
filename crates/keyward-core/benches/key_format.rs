//! Key generation and parse + hash: the work every create and every uncached check does.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use keyward_core::{Environment, PlainKey};

fn key_format(c: &mut Criterion) {
    let prefix = Environment::Live.default_prefix();
    c.bench_function("key/generate (OS CSPRNG)", |b| {
        b.iter(|| PlainKey::generate(black_box(&prefix)))
    });
    let key = PlainKey::generate(&prefix).expect("OS RNG");
    let text = key.expose_secret().to_owned();
    c.bench_function("key/parse+hash", |b| {
        b.iter(|| PlainKey::parse(black_box(&text)).map(|k| k.hash()))
    });
}

criterion_group!(benches, key_format);
criterion_main!(benches);
