# The agent's AMI: Debian 12 (the official image), the agent bundle, the database server, and the
# agent's unit enabled. See README.md beside this file. Build from the repository root:
#
#   npm run build && npm run bundle:agent
#   packer init ami/understudy-agent.pkr.hcl
#   packer build -var region=eu-west-1 ami/understudy-agent.pkr.hcl
#
# Everything on the instance is done by provision.sh (also run by test/ami-provision.test.ts in a
# Debian 12 chroot); this file only starts the build instance, uploads, and makes the image.

packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
  }
}

variable "region" {
  type        = string
  description = "The AWS region to build the AMI in (the dispatcher's launcher.region)."
}

variable "instance_type" {
  type        = string
  default     = "t3.small"
  description = "The build instance's type; of the architecture below."
}

variable "architecture" {
  type        = string
  default     = "x86_64"
  description = "x86_64 or arm64: that of the machine that ran `npm run bundle:agent`, whose node binary the bundle carries."
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "db_flavor" {
  type        = string
  default     = "mariadb"
  description = "mariadb (Debian's MariaDB 10.11) or mysql (MySQL 8 from the MySQL APT repository)."
  validation {
    condition     = contains(["mariadb", "mysql"], var.db_flavor)
    error_message = "The db_flavor must be mariadb or mysql."
  }
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "The subnet of the build instance; empty: the default VPC's. Packer reaches it over SSH."
}

variable "associate_public_ip_address" {
  type        = bool
  default     = true
  description = "Give the build instance a public IP (needed unless Packer reaches the subnet privately)."
}

variable "ami_name_prefix" {
  type        = string
  default     = "understudy-agent"
  description = "The AMI is named PREFIX-VERSION-FLAVOR-YYYYMMDD-hhmmss."
}

locals {
  # Written by `npm run bundle:agent`; a build without the bundle stops here.
  version   = trimspace(file("${path.root}/../dist/agent-bundle/VERSION"))
  timestamp = formatdate("YYYYMMDD-hhmmss", timestamp())
  debian    = var.architecture == "x86_64" ? "amd64" : "arm64"
}

source "amazon-ebs" "agent" {
  region        = var.region
  instance_type = var.instance_type
  subnet_id     = var.subnet_id

  associate_public_ip_address               = var.associate_public_ip_address
  temporary_security_group_source_public_ip = true

  # Debian's official images (the Debian cloud team's account), newest Debian 12 first.
  source_ami_filter {
    owners      = ["136693071363"]
    most_recent = true
    filters = {
      name                = "debian-12-${local.debian}-*"
      architecture        = var.architecture
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
  }
  ssh_username = "admin"

  # IMDSv2 only, on the build instance and in the AMI (instances launched from it default to it;
  # the dispatcher asks for it at launch too, and the agent never falls back to IMDSv1).
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  ami_name        = "${var.ami_name_prefix}-${local.version}-${var.db_flavor}-${local.timestamp}"
  ami_description = "Understudy agent ${local.version} (${var.db_flavor}) on Debian 12: one backup cycle at boot, then power off"

  tags = {
    Name                   = "${var.ami_name_prefix}-${local.version}-${var.db_flavor}"
    "understudy:component" = "agent"
    "understudy:version"   = local.version
    "understudy:db-flavor" = var.db_flavor
    "understudy:base-ami"  = "{{ .SourceAMI }}"
    "understudy:base-name" = "{{ .SourceAMIName }}"
  }
  snapshot_tags = {
    "understudy:component" = "agent"
    "understudy:version"   = local.version
  }
  run_tags = {
    Name                   = "understudy-agent-ami-build"
    "understudy:component" = "ami-build"
  }
}

build {
  name    = "understudy-agent"
  sources = ["source.amazon-ebs.agent"]

  # No trailing slash: the directory itself arrives as /tmp/agent-bundle.
  provisioner "file" {
    source      = "${path.root}/../dist/agent-bundle"
    destination = "/tmp"
  }

  provisioner "file" {
    source      = "${path.root}/../systemd/understudy-agent.service"
    destination = "/tmp/understudy-agent.service"
  }

  # provision.sh as root with its two arguments; then the uploads go (/tmp is on the image's disk).
  provisioner "shell" {
    script           = "${path.root}/provision.sh"
    environment_vars = ["DB_FLAVOR=${var.db_flavor}", "APT_UPGRADE=yes"]
    execute_command  = "chmod +x {{ .Path }} && sudo env {{ .Vars }} bash {{ .Path }} /tmp/agent-bundle /tmp/understudy-agent.service && sudo rm -rf /tmp/agent-bundle /tmp/understudy-agent.service"
  }

  # dist/packer-manifest.json: artifact_id is "REGION:ami-...", the dispatcher's launcher.imageId.
  post-processor "manifest" {
    output     = "${path.root}/../dist/packer-manifest.json"
    strip_path = true
    custom_data = {
      version   = local.version
      db_flavor = var.db_flavor
    }
  }
}
