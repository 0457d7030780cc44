"""The format of `accord workflows test`'s case files, as its --help shows it: a module of its
own, so that the `accord` command's parser shows it without importing the cases' models."""

from __future__ import annotations

CASES_FORMAT = """\
case file format (YAML):
  cases:
    - name: an employee's accounts are created a week before the hire date
      identity: {user_id: u-1, user_name: ada, employee_type: employee,
                 hire_date: "2027-03-01", time_zone: Europe/Paris}
      time: "2027-02-21T23:00:00Z"        # or event: user.created, user.updated...
      expect:
        runs: [pre-hire]                   # exactly these start ([] for none)
        tasks: {pre-hire: [create_accounts, first_day, enable_accounts, welcome_manager]}
    - name: a department move asks the new manager
      previous: {user_id: u-2, user_name: bob, department: Sales}   # before the update
      identity: {user_id: u-2, user_name: bob, department: Finance}
      event: user.updated                  # changed: what differs from previous
      now: "2027-03-01T09:00:00Z"          # optional: `now` in expressions
      expect:
        not_runs: [leaver]                 # these must not start
        tasks: {department-move: [keep_access]}

identity and previous are profiles (the user.* events' fields) plus user_id (default:
the case's name) and status. A time case fires the identity's timers whose time is
exactly that instant. tasks lists the tasks that would run, in order; one whose `when`
reads vars.* is decided at run time and is not listed.
Exit codes: 0 all passed, 1 a case failed or the workflows are invalid,
2 a case file is malformed."""
