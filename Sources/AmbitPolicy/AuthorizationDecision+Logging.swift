public import Logging

extension AuthorizationDecision {
    /// Logs what the decision observed without enforcing: each matching AUDIT policy, and each
    /// matching dry-run policy with what it would have done. Nothing is logged (and no metadata
    /// built) when neither matched, so the data path pays only when there is something to say.
    public func logObservations(to logger: Logger, _ metadata: @autoclosure () -> Logger.Metadata) {
        guard !auditMatches.isEmpty || !dryRunMatches.isEmpty else { return }
        var base = metadata()
        base["decision"] = "\(outcome.rawValue)"
        for policy in auditMatches {
            var entry = base
            entry["policy"] = "\(policy.namespacedName)"
            logger.info("authorization audit: AUDIT policy matched", metadata: entry)
        }
        for match in dryRunMatches {
            var entry = base
            entry["policy"] = "\(match.policy.namespacedName)"
            entry["rule"] = "\(match.rule)"
            entry["dry_run_action"] = "\(match.action.rawValue)"
            logger.info("authorization dry-run: policy would have matched (not enforced)", metadata: entry)
        }
    }
}
