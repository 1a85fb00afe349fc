//! `opengateway`: parses the command line and runs the library's command.

use std::process::ExitCode;

use clap::Parser;
use node::cli::{Cli, Env, USAGE, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // The POC prints its usage on stderr and exits 1 for any command it does not know.
            eprint!("{USAGE}");
            return ExitCode::from(1);
        }
    };
    let env = Env::from_process();
    // Not locked for the whole run: worker threads (the `stdio` command) write too.
    let code = run(cli, &env, &mut std::io::stdout(), &mut std::io::stderr());
    match code {
        Ok(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        Err(e) => {
            eprintln!("{}", anyhow::Error::from(e));
            ExitCode::from(1)
        }
    }
}
