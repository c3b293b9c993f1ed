package service

// Channel is how an actor reached the service.
type Channel string

// Channels.
const (
	CLI    Channel = "cli"
	API    Channel = "api"
	Panel  Channel = "panel"
	System Channel = "system"
)

// Roles, from most to least powerful. Owner is also what a local CLI user
// with access to the data directory is: whoever can read the data key
// owns the installation.
const (
	RoleOwner      = "owner"
	RoleAdmin      = "admin"
	RoleSupervisor = "supervisor"
	RoleAgent      = "agent"
	RoleAuditor    = "auditor"
)

// Actor is who asks for an operation.
type Actor struct {
	Name    string  `json:"name"`
	Role    string  `json:"role"`
	Channel Channel `json:"channel"`
	// Source is where the actor is: an IP address for the API and panel,
	// "unix:uid=N" for the control socket, "local" for a CLI without a
	// server.
	Source string `json:"source,omitempty"`
	// Extension is the agent's own extension (role agent), the only one
	// an agent may see.
	Extension string `json:"extension,omitempty"`
}

// SystemActor is the server acting on its own (the retention job, the
// incident switch's automatic steps).
var SystemActor = Actor{Name: "veilig", Role: RoleOwner, Channel: System}
