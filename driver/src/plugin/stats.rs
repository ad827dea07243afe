//! CPU and memory for TaskStats. dtle's tasks run inside the plugin process, which is measured from `/proc/self`;
//! each task reports its share ([`share_of`]): the process's figures divided among the tasks running in it, so that
//! Nomad's sums over a node's tasks match the process instead of counting it once per task.

use std::time::Instant;

use dtle_proto::nomad::drivers::{cpu_usage, memory_usage, CpuUsage, MemoryUsage, TaskResourceUsage};

/// Successive samples give the CPU share between them.
pub struct Sampler {
    last: Option<(Instant, f64, f64)>,
    ticks_per_s: f64,
    page_size: u64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        // SAFETY: sysconf only reads configuration values.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        Sampler {
            last: None,
            ticks_per_s: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as u64 } else { 4096 },
        }
    }

    /// The usage now. CPU percentages are over the time since the previous sample (0 on the first one).
    pub fn sample(&mut self) -> TaskResourceUsage {
        let now = Instant::now();
        let (user, system) = cpu_ticks().unwrap_or((0.0, 0.0));
        let (mut user_pct, mut system_pct) = (0.0, 0.0);
        if let Some((then, u0, s0)) = self.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                user_pct = ((user - u0) / self.ticks_per_s / secs * 100.0).max(0.0);
                system_pct = ((system - s0) / self.ticks_per_s / secs * 100.0).max(0.0);
            }
        }
        self.last = Some((now, user, system));
        let rss = rss_pages().map(|p| p * self.page_size).unwrap_or(0);
        TaskResourceUsage {
            cpu: Some(CpuUsage {
                system_mode: system_pct,
                user_mode: user_pct,
                total_ticks: (user + system) / self.ticks_per_s * 1000.0,
                throttled_periods: 0,
                throttled_time: 0,
                percent: user_pct + system_pct,
                measured_fields: vec![
                    cpu_usage::Fields::SystemMode as i32,
                    cpu_usage::Fields::UserMode as i32,
                    cpu_usage::Fields::Percent as i32,
                ],
            }),
            memory: Some(MemoryUsage {
                rss,
                cache: 0,
                max_usage: 0,
                kernel_usage: 0,
                kernel_max_usage: 0,
                usage: rss,
                swap: 0,
                measured_fields: vec![memory_usage::Fields::Rss as i32, memory_usage::Fields::Usage as i32],
            }),
        }
    }
}

/// One task's share of the process's usage when `tasks` tasks run in it (at least one: the asking task).
pub fn share_of(usage: &TaskResourceUsage, tasks: usize) -> TaskResourceUsage {
    let n = tasks.max(1) as f64;
    let mut share = usage.clone();
    if let Some(cpu) = share.cpu.as_mut() {
        cpu.system_mode /= n;
        cpu.user_mode /= n;
        cpu.percent /= n;
        cpu.total_ticks /= n;
    }
    if let Some(memory) = share.memory.as_mut() {
        memory.rss = (memory.rss as f64 / n) as u64;
        memory.usage = (memory.usage as f64 / n) as u64;
    }
    share
}

/// (utime, stime) in clock ticks from `/proc/self/stat`.
fn cpu_ticks() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime = fields.get(11)?.parse::<f64>().ok()?;
    let stime = fields.get(12)?.parse::<f64>().ok()?;
    Some((utime, stime))
}

/// Resident pages from `/proc/self/statm`.
fn rss_pages() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    statm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_have_cpu_and_memory() {
        let mut s = Sampler::new();
        let first = s.sample();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = s.sample();
        assert!(first.cpu.is_some() && second.cpu.is_some());
        assert!(second.memory.as_ref().map(|m| m.rss).unwrap_or(0) > 0);
    }

    #[test]
    fn tasks_share_the_process_so_their_sum_is_the_process() {
        let mut s = Sampler::new();
        let _ = s.sample();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let whole = s.sample();
        let part = share_of(&whole, 4);
        let rss = |u: &TaskResourceUsage| u.memory.as_ref().map(|m| m.rss).unwrap_or(0);
        assert!(rss(&part) * 4 <= rss(&whole) && rss(&whole) - rss(&part) * 4 < 4);
        let pct = |u: &TaskResourceUsage| u.cpu.as_ref().map(|c| c.percent).unwrap_or(0.0);
        assert!((pct(&part) * 4.0 - pct(&whole)).abs() < 1e-9);
        assert!(part.cpu.is_some() && part.memory.is_some(), "Nomad dereferences both");
        assert_eq!(rss(&share_of(&whole, 0)), rss(&whole), "at least the asking task");
    }
}
