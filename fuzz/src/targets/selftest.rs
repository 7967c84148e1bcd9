//! `selftest`: a target that fails on purpose (not part of `all`), so the harness's own tests
//! can show that a panic, a wrong output and a hang each fail the run and save the input.

use proptest::test_runner::TestRunner;

use crate::runner::Target;

/// Panics on an input holding `PANIC`, rejects one holding `WRONG`, loops on `HANG`.
pub struct SelfTest;

impl Target for SelfTest {
    fn name(&self) -> &'static str {
        "selftest"
    }

    fn run(&mut self, input: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(input);
        if text.contains("PANIC") {
            panic!("selftest panic");
        }
        if text.contains("HANG") {
            loop {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        if text.contains("WRONG") {
            return Err("selftest wrong output".into());
        }
        Ok(())
    }

    fn generate(&mut self, _runner: &mut TestRunner) -> Vec<u8> {
        b"fine".to_vec()
    }
}
