/// Waits until `condition` holds, checking every 20 ms; `false` once `timeout` has passed without it.
///
/// For state that changes without an event a test can await (a watch that reconnects, a counter
/// another process moves); where an event exists, await the event instead.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}
