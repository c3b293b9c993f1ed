package service

import "slices"

// Perm is a right an operation needs.
type Perm string

// Permissions.
const (
	PermExtensionsRead    Perm = "extensions.read"
	PermExtensionsWrite   Perm = "extensions.write"
	PermRegistrationsRead Perm = "registrations.read"
	PermCallsRead         Perm = "calls.read"
	PermCallsControl      Perm = "calls.control"
	PermRecordsRead       Perm = "records.read"
	PermEventsRead        Perm = "events.read"
	PermBansRead          Perm = "bans.read"
	PermBansWrite         Perm = "bans.write"
	PermTrunksRead        Perm = "trunks.read"
	PermTrunksWrite       Perm = "trunks.write"
	PermPolicyRead        Perm = "policy.read"
	PermConfigRead        Perm = "config.read"
	PermAuditRead         Perm = "audit.read"
	PermAdminsWrite       Perm = "admins.write"
	PermSecurityWrite     Perm = "security.write"
)

var (
	readAll = []Perm{PermExtensionsRead, PermRegistrationsRead, PermCallsRead, PermRecordsRead, PermEventsRead,
		PermBansRead, PermTrunksRead, PermPolicyRead, PermConfigRead}
	adminPerms = append(slices.Clone(readAll), PermExtensionsWrite, PermCallsControl, PermBansWrite, PermTrunksWrite, PermAuditRead)
	rolePerms  = map[string][]Perm{
		RoleOwner:      append(slices.Clone(adminPerms), PermAdminsWrite, PermSecurityWrite),
		RoleAdmin:      adminPerms,
		RoleSupervisor: {PermExtensionsRead, PermRegistrationsRead, PermCallsRead, PermRecordsRead},
		// An agent's reads are narrowed to their own extension by the
		// operations themselves (see scoped).
		RoleAgent:   {PermExtensionsRead, PermRegistrationsRead, PermCallsRead, PermRecordsRead},
		RoleAuditor: append(slices.Clone(readAll), PermAuditRead),
	}
)

// Roles lists the roles, most powerful first.
func Roles() []string {
	return []string{RoleOwner, RoleAdmin, RoleSupervisor, RoleAgent, RoleAuditor}
}

// Allowed reports whether role has p.
func Allowed(role string, p Perm) bool { return slices.Contains(rolePerms[role], p) }

// PermsOf lists the permissions of role.
func PermsOf(role string) []Perm { return slices.Clone(rolePerms[role]) }

func authorize(a Actor, p Perm) error {
	if !Allowed(a.Role, p) {
		return forbidden("%s (%s) may not do this: it needs %s", a.Name, a.Role, p)
	}
	return nil
}

// scoped returns the one extension an agent may see, or "" when the
// actor may see all.
func scoped(a Actor) string {
	if a.Role == RoleAgent {
		if a.Extension == "" {
			return "\x00none"
		}
		return a.Extension
	}
	return ""
}
