//! After recovery, reads every tracked write back from the current master of its group, to
//! tell which acknowledged writes were lost (and which unacknowledged ones landed anyway).

use std::time::Duration;

use super::resp::{Reply, RespConn};
use super::{KeyPlan, Routes, WriteOp};

/// Ids of `writes` present in the store now. Refreshes routes first. Batches of 1000
/// pipelined EXISTS per group master.
pub async fn readback(
    routes: &Routes,
    keys: &KeyPlan,
    writes: &[WriteOp],
    password: Option<&str>,
) -> Result<Vec<u64>, String> {
    routes.refresh().await?;
    let mut found = vec![];
    for (gi, g) in keys.groups.iter().enumerate() {
        let ids: Vec<u64> = writes
            .iter()
            .filter(|w| w.group as usize == gi)
            .map(|w| w.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        // Pinned clients share group names with the main routes: look the group up by name.
        let idx = routes
            .group_names
            .iter()
            .position(|n| *n == g.name)
            .unwrap_or(gi);
        let master = routes
            .master_of(idx)
            .ok_or_else(|| format!("no master known for {} to read writes back from", g.name))?;
        let mut c = RespConn::connect(master.port, password, Duration::from_secs(3))
            .await
            .map_err(|e| format!("read-back from {}: {e}", master.node))?;
        for chunk in ids.chunks(1000) {
            for id in chunk {
                let k = keys.write_key(gi, *id);
                c.queue(&[b"EXISTS", &k]);
            }
            c.flush().await.map_err(|e| e.to_string())?;
            for id in chunk {
                match tokio::time::timeout(Duration::from_secs(5), c.read_reply()).await {
                    Ok(Ok(Reply::Int(1))) => found.push(*id),
                    Ok(Ok(Reply::Int(_))) => {}
                    Ok(Ok(other)) => {
                        return Err(format!("read-back from {}: {other:?}", master.node))
                    }
                    Ok(Err(e)) => return Err(format!("read-back from {}: {e}", master.node)),
                    Err(_) => return Err(format!("read-back from {} timed out", master.node)),
                }
            }
        }
    }
    Ok(found)
}
