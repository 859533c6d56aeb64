// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "coordinatord",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "coordinatord", targets: ["coordinatord"]),
        .executable(name: "coordinatord-bench", targets: ["coordinatord-bench"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "Coordination", targets: ["Coordination"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // TLS for `coordinatord web` off loopback (Hummingbird's HummingbirdTLS is built on it).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // hiredis from Debian's libhiredis-dev. No pkgConfig: its -D_FILE_OFFSET_BITS=64 makes
        // SwiftPM warn, and headers and library are on the default paths anyway.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(name: "RedisClient", dependencies: ["CHiredis", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Coordination"),
        .target(
            name: "CoordinatorDaemon",
            dependencies: [
                "Coordination", "RedisClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            // The Lua of each state change, compiled into the binary (nothing to find at run time).
            resources: [
                .embedInCode("Store/Scripts/shared.lua"),
                .embedInCode("Store/Scripts/coordinate.lua"),
                .embedInCode("Store/Scripts/commit.lua"),
                .embedInCode("Store/Scripts/decide.lua"),
            ]
        ),
        // What the operator's commands and the web console both read and do (status, approvals,
        // plans, events, dead letters, decisions), so that the two never drift apart.
        .target(
            name: "Operations",
            dependencies: ["CoordinatorDaemon", "Coordination", "RedisClient", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // `coordinatord web`: the console for people, on Hummingbird.
        .target(
            name: "CoordinatorWeb",
            dependencies: [
                "Operations", "CoordinatorDaemon", "RedisClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "coordinatord",
            dependencies: [
                "CoordinatorDaemon", "Coordination", "RedisClient", "Operations", "CoordinatorWeb",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "coordinatord-bench",
            dependencies: [
                "CoordinatorDaemon", "Coordination", "RedisClient", "TestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Starts and stops real redis-server processes for tests and benchmarks.
        .target(name: "TestSupport", dependencies: ["RedisClient"]),
        // Test traits for suites that run in parallel (`.sharesMachine`, `.alone`): tests only.
        .target(name: "TestTraits", dependencies: ["TestSupport"]),
        .testTarget(name: "RedisClientTests", dependencies: ["RedisClient", "TestSupport", "TestTraits"]),
        .testTarget(name: "CoordinationTests", dependencies: ["Coordination"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "WebConsoleTests",
            dependencies: ["CoordinatorWeb", "Operations", "CoordinatorDaemon", "RedisClient", "TestSupport", "TestTraits",
                           .product(name: "Crypto", package: "swift-crypto")],
            // The browser script the tests run with python3 (read from the source tree).
            exclude: ["Browser"]
        ),
        .testTarget(
            name: "CoordinatorDaemonTests",
            dependencies: ["CoordinatorDaemon", "Coordination", "RedisClient", "TestSupport", "TestTraits",
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
