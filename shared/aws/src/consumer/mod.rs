//! The shard consumer of `eventide-runtime`, run on AWS: the ports wired to the AWS
//! adapters ([`resources`]), a KCL-like worker that shares a stream's shards through leases
//! ([`worker`]), the Kinesis Lambda handler ([`lambda`]), the heartbeat ticker ([`ticker`])
//! and one pass of the autoscaler ([`autoscaler`]).

pub mod autoscaler;
pub mod lambda;
pub mod resources;
pub mod ticker;
pub mod worker;
