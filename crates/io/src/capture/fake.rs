//! A live queue that hands on frames it was given instead of the kernel's: the capture loop
//! and the pipeline behind it run in tests without privileges, namespaces or NICs, with the
//! kernel's drops and failures scripted.

use std::collections::VecDeque;

use super::xdp::LiveError;
use super::{Frame, LiveQueue, QueueDrops};

/// What one `recv_batch` call gets.
pub enum ScriptStep {
    /// A batch of Ethernet frames with their capture times.
    Frames(Vec<(u64, Vec<u8>)>),
    /// The call fails like the kernel would.
    Fail(LiveError),
}

/// Replays its steps in order, then has nothing more (an idle queue).
pub struct ScriptedQueue {
    steps: VecDeque<ScriptStep>,
    /// What [`LiveQueue::drops`] reports: the kernel's counters, cumulative.
    pub drops: QueueDrops,
    name: String,
}

impl ScriptedQueue {
    pub fn new(name: &str, steps: Vec<ScriptStep>) -> ScriptedQueue {
        ScriptedQueue {
            steps: steps.into(),
            drops: QueueDrops::default(),
            name: name.to_string(),
        }
    }
}

impl LiveQueue for ScriptedQueue {
    fn recv_batch(
        &mut self,
        timeout_ms: i32,
        f: &mut dyn FnMut(Frame<'_>),
    ) -> Result<usize, LiveError> {
        match self.steps.pop_front() {
            Some(ScriptStep::Frames(frames)) => {
                for (ts, data) in &frames {
                    f(Frame::ethernet(*ts, data));
                }
                Ok(frames.len())
            }
            Some(ScriptStep::Fail(e)) => Err(e),
            None => {
                // Idle, as a real queue waits for frames.
                let wait = u64::try_from(timeout_ms.max(0)).unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(wait.min(10)));
                Ok(0)
            }
        }
    }

    fn drops(&mut self) -> QueueDrops {
        self.drops
    }

    fn thread_name(&self) -> String {
        format!("fake-{}", self.name)
    }

    fn describe(&self) -> String {
        format!("scripted queue {}", self.name)
    }

    fn detach_needs_net_admin(&self) -> bool {
        false
    }
}
