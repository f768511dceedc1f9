//! Seeded RNG for property-style tests (SplitMix64: tiny, deterministic, no deps).

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n) (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u64() as u8).collect()
    }
    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Hex strings of the fenced code blocks in docs/format.md: on each line the
/// leading even-length hex tokens, joined (so blocks may carry comments).
pub fn doc_hex_blocks() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/format.md");
    let text = std::fs::read_to_string(path).expect("docs/format.md is readable");
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            match cur.take() {
                Some(b) => blocks.push(b),
                None => cur = Some(String::new()),
            }
            continue;
        }
        if let Some(b) = cur.as_mut() {
            for tok in line.split_whitespace() {
                if tok.len() % 2 == 0 && tok.bytes().all(|c| c.is_ascii_hexdigit()) {
                    b.push_str(tok);
                } else {
                    break;
                }
            }
        }
    }
    blocks
}

pub fn assert_in_docs(hex: &str) {
    assert!(
        doc_hex_blocks().iter().any(|b| b == hex),
        "docs/format.md has no code block with the vector {hex}"
    );
}
