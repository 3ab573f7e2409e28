//! pgha's integration tests: one test binary, driving the real `pgha` binary against real lab
//! clusters (etcd or pgha's Consul double, Patroni from PyPI, PostgreSQL 15, sshd) on loopback addresses. Run them
//! with `scripts/test.sh`, which installs what the labs need. `terminal` needs no lab:
//! `cargo test --test integration terminal::` runs it alone.

mod bad_input;
mod consul;
mod dcs_outage;
mod doctor;
mod drills;
mod edit_config;
mod etcd;
mod failover;
mod failures;
mod fault_matrix;
mod harness;
mod hosts;
mod lab;
mod mixed;
mod modes;
mod parity;
mod rebuild;
mod rehearse;
mod remote;
mod runbooks;
mod scale_up;
mod secrets;
mod services;
mod standby;
mod status;
mod terminal;
mod tls;
mod upgrade;
