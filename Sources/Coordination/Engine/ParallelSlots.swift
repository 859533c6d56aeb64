// Storage the engine fills from several threads at once: each place written by one thread,
// read after all are done.

/// A result slot filled by one of the concurrent parts.
final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A buffer whose disjoint parts are initialized by different threads.
struct SendableBuffer<Element>: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Element>
}

/// Elements of an array-to-be, each initialized once at its place, possibly by different
/// threads (each place by one), then moved into an array.
final class Slots<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    let count: Int
    private var taken = false

    init(_ count: Int) {
        self.count = count
        base = .allocate(capacity: max(1, count))
    }

    func initialize(_ index: Int, _ value: consuming Element) {
        precondition(index >= 0 && index < count)
        (base + index).initialize(to: value)
    }

    /// The elements, all of which must have been initialized.
    func take() -> [Element] {
        precondition(!taken)
        taken = true
        return [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { buffer.baseAddress!.moveInitialize(from: base, count: count) }
            initialized = count
        }
    }

    /// Moves the elements (all initialized) to `target`.
    func move(to target: UnsafeMutablePointer<Element>) {
        precondition(!taken)
        taken = true
        target.moveInitialize(from: base, count: count)
    }

    deinit {
        if !taken { base.deinitialize(count: count) }
        base.deallocate()
    }
}
