"""The offboarding workflow: when someone leaves, take every access away and force
every password they knew to change.

``offboard start`` plans the case (every step written first), then carries out the
automatic steps one transaction each, so a crash at any point is resumed by running
it again. Follow-up steps (rotations, 2FA re-enrolment, recovery codes) close
themselves when the exposure they wait for is cleared; manual platform steps are
closed with ``offboard done``. Built on govern's services; govern never imports it.
"""
