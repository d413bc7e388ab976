//! The `switchboard` binary: parses the command line and runs one command.

use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{self, Cli, Command};
use switchboard::{logging, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is the normal case.
    let _ = dotenvy::dotenv();
    let config = match cli.config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("switchboard: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    let outcome = match &cli.command {
        None | Some(Command::Serve) => actix_web::rt::System::new()
            .block_on(server::run(config))
            .map_err(|e| e.to_string()),
        Some(Command::Migrate) => cli::migrate(&config).map_err(|e| e.to_string()),
        Some(Command::User(command)) => cli::user(&config, command).map_err(|e| e.to_string()),
        Some(Command::HashPassword) => cli::hash_password(&config).map_err(|e| e.to_string()),
        Some(Command::Mail(command)) => cli::mail(&config, command).map_err(|e| e.to_string()),
        Some(Command::Backup { dir }) => cli::backup(&config, dir).map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("switchboard: {message}");
            ExitCode::FAILURE
        }
    }
}
