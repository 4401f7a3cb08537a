"""`aws-public`: prices from AWS Price List bulk offer files (EC2, EBS, RDS, S3, ELB, NAT)."""
