import ArgumentParser

/// Benchmarks that print numbers: `redis` (the client against redis-benchmark), `engine`
/// (the pure coordination engine), `e2e` (daemons over a real Redis or a cluster), `soak`
/// (sustained load, memory per window), `trust` (the signature check), `failover` (what a master
/// SIGKILLed on a cluster loses).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinatord-bench",
        abstract: "Benchmarks for coordinatord; each prints JSON lines.",
        subcommands: [RedisBench.self, EngineBench.self, E2EBench.self, SoakBench.self, TrustBench.self, FailoverBench.self]
    )
}

Bench.main()
