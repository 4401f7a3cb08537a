-- Restated scopes delete their older versions on every batch that carries the scope.
CREATE INDEX cost_lines_scope ON cost_lines (billing_scope, billing_scope_version)
    WHERE billing_scope IS NOT NULL;
