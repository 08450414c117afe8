//! `--target-container NAME`: a Docker container's cgroup, found through its main process
//! (`docker inspect`), so it is read like any other group whatever cgroup driver Docker uses.
use super::cgroup::{Cgroup, CgroupError};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "--target-container {name}: cannot run `docker inspect`: {source}; is docker installed?"
    )]
    Run {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--target-container {name}: {why}; is it running (`docker ps`)?")]
    NotRunning { name: String, why: String },
    #[error("--target-container {name}: {source}")]
    Cgroup {
        name: String,
        #[source]
        source: CgroupError,
    },
}

/// The main process of a running container.
pub fn container_pid(name: &str) -> Result<u32, DockerError> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.State.Pid}}", name])
        .output()
        .map_err(|source| DockerError::Run {
            name: name.into(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<u32>() {
        Ok(pid) if out.status.success() && pid > 0 => Ok(pid),
        _ => Err(DockerError::NotRunning {
            name: name.into(),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// The container's cgroup.
pub fn container_cgroup(name: &str) -> Result<Cgroup, DockerError> {
    let pid = container_pid(name)?;
    Cgroup::of_pid(pid).map_err(|source| DockerError::Cgroup {
        name: name.into(),
        source,
    })
}
