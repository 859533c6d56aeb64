/// The daemon's version, reported in its heartbeat and start-up line.
public enum DaemonVersion {
    public static let current = "0.1.0"
}
