extension Keys {
    /// A queue's name under the prefix (`requests` for `coord:requests`): the inverse of
    /// `queue(_:)`; a key outside the prefix is returned whole.
    public func queueName(_ key: String) -> String {
        key.hasPrefix(prefix + ":") ? String(key.dropFirst(prefix.count + 1)) : key
    }
}
